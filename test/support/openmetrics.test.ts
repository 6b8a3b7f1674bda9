import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkExposition, type ParsedSample } from './openmetrics.ts';

const openMetricsLines = [
  '# TYPE x counter',
  '# HELP x Requests handled.',
  'x_total{outcome="ok"} 42',
  '# TYPE queue_bytes gauge',
  '# UNIT queue_bytes bytes',
  '# HELP queue_bytes Bytes waiting in the send queue.',
  'queue_bytes 512',
  '# TYPE dial_seconds histogram',
  '# HELP dial_seconds Time to connect upstream.',
  'dial_seconds_bucket{le="0.5"} 1',
  'dial_seconds_bucket{le="1.0"} 3',
  'dial_seconds_bucket{le="+Inf"} 4',
  'dial_seconds_count 4',
  'dial_seconds_sum 3.25',
  '# TYPE target info',
  '# HELP target Target metadata.',
  'target_info{service_name="proxy"} 1',
  '# EOF',
];

const openMetrics = `${openMetricsLines.join('\n')}\n`;

const expectedSamples: ParsedSample[] = [
  { name: 'x_total', labels: { outcome: 'ok' }, value: 42 },
  { name: 'queue_bytes', labels: {}, value: 512 },
  { name: 'dial_seconds_bucket', labels: { le: '0.5' }, value: 1 },
  { name: 'dial_seconds_bucket', labels: { le: '1.0' }, value: 3 },
  { name: 'dial_seconds_bucket', labels: { le: '+Inf' }, value: 4 },
  { name: 'dial_seconds_count', labels: {}, value: 4 },
  { name: 'dial_seconds_sum', labels: {}, value: 3.25 },
  { name: 'target_info', labels: { service_name: 'proxy' }, value: 1 },
];

function withLines(replacements: Record<string, string | null>): string {
  const lines = openMetricsLines
    .map((line) => (line in replacements ? replacements[line] : line))
    .filter((line): line is string => line !== null);
  return `${lines.join('\n')}\n`;
}

test('a valid OpenMetrics exposition passes and its samples come back', async () => {
  const result = await checkExposition(openMetrics, 'openmetrics');
  assert.deepEqual(result.problems, []);
  assert.equal(result.ok, true);
  assert.deepEqual(result.samples, expectedSamples);
});

test('OpenMetrics families keep their type, help and unit, the info family named without _info', async () => {
  const result = await checkExposition(openMetrics, 'openmetrics');
  assert.deepEqual(result.families, [
    { name: 'x', type: 'counter', help: 'Requests handled.', unit: '' },
    { name: 'queue_bytes', type: 'gauge', help: 'Bytes waiting in the send queue.', unit: 'bytes' },
    { name: 'dial_seconds', type: 'histogram', help: 'Time to connect upstream.', unit: '' },
    { name: 'target', type: 'info', help: 'Target metadata.', unit: '' },
  ]);
});

test('the same series in the text format 0.0.4 parse to the same samples', async () => {
  // Observed with Prometheus 3.16's text parser: `le="1"` comes back as `le="1.0"` (and `+Inf`, `0.5`
  // unchanged), because both parsers rewrite the `le` of a histogram family as an OpenMetrics float.
  // A text exposition's `le="1"` and an OpenMetrics `le="1.0"` are therefore one series in Prometheus.
  const text = [
    '# HELP x_total Requests handled.',
    '# TYPE x_total counter',
    'x_total{outcome="ok"} 42',
    '# HELP queue_bytes Bytes waiting in the send queue.',
    '# TYPE queue_bytes gauge',
    'queue_bytes 512',
    '# HELP dial_seconds Time to connect upstream.',
    '# TYPE dial_seconds histogram',
    'dial_seconds_bucket{le="0.5"} 1',
    'dial_seconds_bucket{le="1"} 3',
    'dial_seconds_bucket{le="+Inf"} 4',
    'dial_seconds_count 4',
    'dial_seconds_sum 3.25',
    '# HELP target_info Target metadata.',
    '# TYPE target_info gauge',
    'target_info{service_name="proxy"} 1',
    '',
  ].join('\n');
  const [fromText, fromOpenMetrics] = await Promise.all([
    checkExposition(text, 'text'),
    checkExposition(openMetrics, 'openmetrics'),
  ]);
  assert.deepEqual(fromText.problems, []);
  assert.deepEqual(fromOpenMetrics.samples, expectedSamples);
  assert.deepEqual(fromText.samples, fromOpenMetrics.samples);
});

test('an OpenMetrics exposition without # EOF fails', async () => {
  const result = await checkExposition(withLines({ '# EOF': null }), 'openmetrics');
  assert.equal(result.ok, false);
  assert.deepEqual(result.problems, ['end of input: data does not end with # EOF']);
});

test('a # UNIT that is not a suffix of the family name fails', async () => {
  const result = await checkExposition(
    withLines({ '# UNIT queue_bytes bytes': '# UNIT queue_bytes seconds' }),
    'openmetrics',
  );
  assert.equal(result.ok, false);
  assert.deepEqual(result.problems, [
    'line 5: unit "seconds" not a suffix of metric "queue_bytes" (line "# UNIT queue_bytes seconds")',
  ]);
});

test('an OpenMetrics counter sample without _total fails', async () => {
  // Prometheus' parser accepts `x 42` after `# TYPE x counter`; omcheck rejects it because an
  // OpenMetrics counter family x has only the samples x_total and x_created.
  const result = await checkExposition(
    withLines({ 'x_total{outcome="ok"} 42': 'x{outcome="ok"} 42' }),
    'openmetrics',
  );
  assert.equal(result.ok, false);
  assert.equal(result.problems.length, 1, result.problems.join('\n'));
  assert.match(result.problems[0]!, /^line 3: sample "x" is not a sample of the counter family "x"/);
});
