import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OtlpReceiver } from '@switchyard/otlp-proto';
import { type ExportOutcome, OtlpLogsClient, type OtlpRetryPolicy } from './otlp-logs-client.ts';
import { logBatch, recordBodies, resettingListener } from './otlp-test-support.ts';

// The channel's reconnect backoff starts at initialBackoffMs and grows 1.6-fold per failed
// connection attempt, each step jittered by ±20%, up to maxBackoffMs. After 11 failed attempts the
// next one is about 5 ms * 1.6^10 = 550 ms away (under 80 ms with a chance near 1e-7, the jitter
// compounding), while five attempts with these settings, the old default count, were over after
// at most 5 + 10 + 20 + 40 ms of backoff: all failed at once with UNAVAILABLE, the channel waiting.
const retry: OtlpRetryPolicy = { initialBackoffMs: 5, maxBackoffMs: 1000, maxElapsedMs: 10_000 };
const failedConnectsBeforeRestart = 11;

/**
 * A client that reached the collector, then the collector down: its port resets every connection
 * until `failedConnectsBeforeRestart` reconnect attempts have failed, with `during` exporting
 * meanwhile (a call keeps the channel reconnecting); then the collector is back on the same port.
 */
async function acrossAnOutage<After>(
  during: (client: OtlpLogsClient) => Promise<ExportOutcome>,
  after: (client: OtlpLogsClient, restarted: OtlpReceiver) => Promise<After>,
): Promise<{ during: ExportOutcome; after: After }> {
  const receiver = await OtlpReceiver.start();
  using client = new OtlpLogsClient({ endpoint: receiver.url, retry });
  assert.equal((await client.export(logBatch('n1', ['before']), 1)).kind, 'accepted');
  const address = receiver.address;
  await receiver.close();
  const outage = await resettingListener(Number(address.split(':').at(-1)));
  const duringOutcome = during(client);
  await outage.resets(failedConnectsBeforeRestart);
  await outage.close();
  await using restarted = await OtlpReceiver.start({ address });
  const afterOutcome = await after(client, restarted);
  return { during: await duringOutcome, after: afterOutcome };
}

test('forwards an export begun just after the collector restarted, while the channel waits out its reconnect backoff', async () => {
  const shutdown = new AbortController();
  const { during, after } = await acrossAnOutage(
    (client) => client.export(logBatch('n1', ['during']), 1, shutdown.signal),
    async (client, restarted) => {
      // Only the export that begins with the collector up is in question here.
      shutdown.abort(new Error('test: not this export'));
      const outcome = await client.export(logBatch('n1', ['after 1', 'after 2', 'after 3']), 3);
      const received = outcome.kind === 'accepted' ? recordBodies((await restarted.nextLogs()).request) : [];
      return { outcome, received };
    },
  );
  assert.equal(during.kind, 'failed');
  assert.equal(after.outcome.kind, 'accepted', JSON.stringify(after.outcome));
  assert.equal(after.outcome.accepted, 3);
  assert.ok(after.outcome.attempts > 1, 'the first attempt failed at once, the channel still in backoff');
  assert.deepEqual(after.received, ['after 1', 'after 2', 'after 3']);
});

test('forwards an export begun during an outage shorter than maxElapsedMs once the collector is back', async () => {
  const { during, after: received } = await acrossAnOutage(
    (client) => client.export(logBatch('n1', ['during']), 1),
    async (_client, restarted) => recordBodies((await restarted.nextLogs()).request),
  );
  assert.equal(during.kind, 'accepted', JSON.stringify(during));
  // Its first five attempts were over within 75 ms of backoff; the outage lasted longer.
  assert.ok(during.attempts > 5, `${during.attempts} attempts`);
  assert.deepEqual(received, ['during']);
});
