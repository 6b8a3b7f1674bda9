import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkMetrics } from './promtool.ts';

test('a well-formed exposition passes promtool check metrics', async () => {
  const verdict = await checkMetrics(
    [
      '# HELP demo_requests_total Requests handled.',
      '# TYPE demo_requests_total counter',
      'demo_requests_total{outcome="ok"} 42',
      '# HELP demo_queue_bytes Bytes waiting in the send queue.',
      '# TYPE demo_queue_bytes gauge',
      'demo_queue_bytes 0',
      '',
    ].join('\n'),
  );
  assert.deepEqual(verdict, { ok: true, problems: [], output: '' });
});

test('a counter without the _total suffix is reported as a problem', async () => {
  const verdict = await checkMetrics(
    ['# HELP demo_requests Requests handled.', '# TYPE demo_requests counter', 'demo_requests 42', ''].join(
      '\n',
    ),
  );
  assert.equal(verdict.ok, false);
  assert.ok(
    verdict.problems.some((problem) => problem.includes('demo_requests') && problem.includes('_total')),
    verdict.output,
  );
});

test('a line that is not a sample is reported as a parse problem', async () => {
  const verdict = await checkMetrics('demo_requests_total forty-two\n');
  assert.equal(verdict.ok, false);
  assert.ok(
    verdict.problems.some((problem) => problem.includes('parsing error')),
    verdict.output,
  );
});
