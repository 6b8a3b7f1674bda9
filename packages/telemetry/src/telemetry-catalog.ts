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
  },
});
