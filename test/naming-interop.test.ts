import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleCatalog } from '@switchyard/sample-worker';
import {
  ADMIN_ROUTES,
  httpServerCatalog,
  PROCESS_METRICS,
  type PrometheusMetricShape,
  prometheusLabelName,
  prometheusMetricName,
  type ResolvedInstrument,
  telemetryCatalog,
} from '@switchyard/telemetry';
import fc from 'fast-check';
import { translateWithOtlpTranslator } from './support/otlp-names.ts';

// The Go prometheus/otlptranslator, as a Collector's Prometheus exporter runs it, is the oracle:
// our pull path must name every metric exactly as the push path will.

const SHAPE: Record<ResolvedInstrument['kind'], PrometheusMetricShape> = {
  counter: 'monotonic_counter',
  updown_counter: 'non_monotonic_counter',
  gauge: 'gauge',
  histogram: 'histogram',
};

test('every catalog instrument gets the same Prometheus name and labels from us and from otlptranslator', async () => {
  const instruments = [
    ...sampleCatalog.instruments,
    ...telemetryCatalog.instruments,
    ...httpServerCatalog([...ADMIN_ROUTES]).instruments,
  ];
  const oracle = await translateWithOtlpTranslator(
    instruments.map((instrument) => ({
      name: instrument.otelName,
      unit: instrument.unit,
      type: SHAPE[instrument.kind],
      labels: instrument.attributes.map((attribute) => attribute.key),
    })),
  );
  instruments.forEach((instrument, i) => {
    assert.equal(instrument.prometheusName, oracle[i]?.metric, instrument.otelName);
    assert.deepEqual(
      instrument.attributes.map((attribute) => attribute.labelName),
      oracle[i]?.labels,
      instrument.otelName,
    );
  });
});

test('the process metrics get the same Prometheus names from us and from otlptranslator', async () => {
  const kinds = {
    counter: 'monotonic_counter',
    'up-down counter': 'non_monotonic_counter',
    gauge: 'gauge',
    histogram: 'histogram',
  } as const;
  const items = PROCESS_METRICS.map((metric) => ({
    name: metric.name,
    unit: metric.unit,
    type: kinds[metric.kind],
  }));
  const oracle = await translateWithOtlpTranslator(items);
  for (const [i, item] of items.entries()) {
    assert.equal(prometheusMetricName(item.name, item.unit, item.type), oracle[i]?.metric, item.name);
  }
});

test('for arbitrary names, units and shapes our translation agrees with otlptranslator', async () => {
  const nameChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789._-:/ '.split(''));
  const items = fc.sample(
    fc.record({
      name: fc
        .array(nameChar, { minLength: 1, maxLength: 30 })
        .map((chars) => `m${chars.join('')}`)
        .chain((base) =>
          fc.constantFrom(base, `${base}.total`, `${base}_seconds`, `${base}.ratio`, `total.${base}`),
        ),
      unit: fc.constantFrom(
        '',
        '1',
        's',
        'ms',
        'By',
        'KiBy',
        '{request}',
        'By/s',
        '1/s',
        'requests/min',
        '%',
        'Cel',
        'x_y',
        '{a}/s',
      ),
      type: fc.constantFrom<PrometheusMetricShape>(
        'monotonic_counter',
        'non_monotonic_counter',
        'gauge',
        'histogram',
      ),
      labels: fc.array(
        fc
          .array(fc.constantFrom(...'abcXYZ019._-: '.split('')), { maxLength: 12 })
          .chain((chars) =>
            fc.constantFrom(`k${chars.join('')}`, `_k${chars.join('')}`, `9${chars.join('')}`),
          ),
        { maxLength: 3 },
      ),
    }),
    { numRuns: 500, seed: 20261123 },
  );
  const oracle = await translateWithOtlpTranslator(items);
  items.forEach((item, i) => {
    const expected = oracle[i];
    assert.ok(expected !== undefined);
    if (expected.metric !== '') {
      assert.equal(
        prometheusMetricName(item.name, item.unit, item.type),
        expected.metric,
        JSON.stringify(item),
      );
    }
    item.labels.forEach((label, j) => {
      const oracleLabel = expected.labels[j];
      if (oracleLabel !== undefined && oracleLabel !== '')
        assert.equal(prometheusLabelName(label), oracleLabel, label);
    });
  });
});
