import { defineCatalog } from './catalog.ts';

/** Instruments of the telemetry pipeline itself, present in every worker. */
export const telemetryCatalog = defineCatalog({
  namespace: 'switchyard.telemetry',
  instruments: {
    'otlp.exports': {
      kind: 'counter',
      unit: '{export}',
      description: 'OTLP metric exports to the Collector, by result.',
      attributes: {
        result: { description: 'Whether the Collector accepted the export.', values: ['success', 'failure'] },
      },
    },
    'otlp.export.failures': {
      kind: 'counter',
      unit: '{export}',
      description:
        'Failed OTLP metric exports, by reason (gRPC status class). The worker logs the first failure of a streak.',
      attributes: {
        reason: {
          description:
            'timeout: deadline exceeded; unavailable: Collector unreachable or overloaded; unauthenticated: credentials refused; rejected: the Collector refused the data; other: anything else.',
          values: ['timeout', 'unavailable', 'unauthenticated', 'rejected', 'other'],
        },
      },
    },
    'otlp.export.duration': {
      kind: 'histogram',
      unit: 's',
      description: 'Time one OTLP metric export took, retries included, whatever its result.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    },
    'scrape.duration': {
      kind: 'histogram',
      unit: 's',
      description:
        'Time to answer one GET /metrics on the telemetry thread: snapshot of every data thread, serialization, compression, until the response is written out.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      attributes: {
        format: {
          description:
            'text: Prometheus text 0.0.4; openmetrics: OpenMetrics 1.0 (what the scraper asked for).',
          values: ['text', 'openmetrics'],
        },
      },
    },
    'scrape.failures': {
      kind: 'counter',
      unit: '{scrape}',
      description:
        'GET /metrics requests answered with an error, by reason; the worker logs the first of a streak.',
      attributes: {
        reason: {
          description:
            'timeout: a data thread did not answer the collection in time (503); error: collecting or writing failed (500).',
          values: ['timeout', 'error'],
        },
      },
    },
    series: {
      kind: 'gauge',
      unit: '{series}',
      description:
        'Series this process exposed at its last collection (each histogram bucket, sum and count is one; histograms without observations are none): what a scrape of it stores.',
    },
    skipped_metrics: {
      kind: 'counter',
      unit: '{metric}',
      description:
        'Metrics recorded through the OpenTelemetry API outside the catalogs that a /metrics response had to leave out, by reason; each name is logged once.',
      attributes: {
        reason: {
          description:
            'exponential_histogram: the text formats cannot carry one; name_clash: its Prometheus name is taken by a catalog metric or another type.',
          values: ['exponential_histogram', 'name_clash'],
        },
      },
    },
  },
});
