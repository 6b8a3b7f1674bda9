import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setLogger } from '@grpc/grpc-js';
import { ReceiverBindError } from './errors.ts';
import { OtlpReceiver } from './receiver.ts';

test('reports a bind error naming the address when it is already taken', async () => {
  await using first = await OtlpReceiver.start();
  const grpcLog: unknown[] = [];
  setLogger({ error: (...args: unknown[]) => grpcLog.push(...args) });
  try {
    await assert.rejects(OtlpReceiver.start({ address: first.address }), (error: unknown) => {
      assert.ok(error instanceof ReceiverBindError);
      assert.equal(error.address, first.address);
      return true;
    });
  } finally {
    setLogger(console);
  }
  assert.match(String(grpcLog[0]), /No address added/);
});
