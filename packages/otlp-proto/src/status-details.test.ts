import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRetryDelayMs, encodeRetryStatusDetails } from './status-details.ts';

test('round-trips a retry delay of 1.5 s through google.rpc.Status details', () => {
  assert.equal(decodeRetryDelayMs(encodeRetryStatusDetails(14, 'busy', 1500)), 1500);
});

test('reads no retry delay from a status without RetryInfo', () => {
  assert.equal(decodeRetryDelayMs(Buffer.from([0x08, 0x0e])), undefined);
});
