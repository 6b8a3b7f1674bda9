import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BatchBuffer } from './buffer.ts';

const batch = (bytes: number, records = 1) => ({ payload: Buffer.alloc(bytes), records });

test('refuses a batch beyond the batch limit or the byte limit, changing nothing', () => {
  const buffer = new BatchBuffer({ maxBatches: 2, maxBytes: 100 });
  assert.ok(buffer.offer(batch(40, 3)));
  assert.ok(!buffer.offer(batch(61)), 'bytes');
  assert.ok(buffer.offer(batch(60, 2)));
  assert.ok(!buffer.offer(batch(0)), 'batches');
  assert.deepEqual([buffer.batches, buffer.bytes, buffer.records], [2, 100, 5]);
});

test('takes batches in order within the export limits, at least one', () => {
  const buffer = new BatchBuffer({ maxBatches: 10, maxBytes: 1000 });
  for (const size of [10, 20, 30, 500]) buffer.offer(batch(size, size));
  assert.deepEqual(
    buffer.take(10, 60).map((taken) => taken.records),
    [10, 20, 30],
  );
  assert.deepEqual(
    buffer.take(10, 1).map((taken) => taken.records),
    [500],
    'a batch larger than maxBytes still goes alone',
  );
  assert.deepEqual(buffer.take(10, 1000), []);
});

test('counts stay equal to the sum of what it holds, whatever the sequence of operations', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant('offer' as const), bytes: fc.nat(300), records: fc.nat(50) }),
          fc.record({
            op: fc.constant('take' as const),
            batches: fc.integer({ min: 1, max: 5 }),
            bytes: fc.nat(600),
          }),
        ),
        { maxLength: 200 },
      ),
      (operations) => {
        const buffer = new BatchBuffer({ maxBatches: 8, maxBytes: 1000 });
        const model: Array<{ bytes: number; records: number }> = [];
        for (const operation of operations) {
          if (operation.op === 'offer') {
            const fits =
              model.length < 8 && model.reduce((sum, b) => sum + b.bytes, 0) + operation.bytes <= 1000;
            assert.equal(buffer.offer(batch(operation.bytes, operation.records)), fits);
            if (fits) model.push({ bytes: operation.bytes, records: operation.records });
          } else {
            const taken = buffer.take(operation.batches, operation.bytes);
            const expected = model.splice(0, taken.length);
            assert.deepEqual(
              taken.map((b) => b.records),
              expected.map((b) => b.records),
            );
          }
          assert.equal(buffer.batches, model.length);
          assert.equal(
            buffer.bytes,
            model.reduce((sum, b) => sum + b.bytes, 0),
          );
          assert.equal(
            buffer.records,
            model.reduce((sum, b) => sum + b.records, 0),
          );
        }
      },
    ),
  );
});

test('copied payloads stay intact while the memory of released ones is reused', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({
            op: fc.constant('offer' as const),
            bytes: fc.uint8Array({ minLength: 1, maxLength: 300_000 }),
          }),
          fc.record({ op: fc.constant('take' as const), batches: fc.integer({ min: 1, max: 4 }) }),
        ),
        { maxLength: 120 },
      ),
      (operations) => {
        const buffer = new BatchBuffer({ maxBatches: 64, maxBytes: 8 * 1024 * 1024 });
        const expected: Buffer[] = [];
        const held: Array<{ taken: ReturnType<BatchBuffer['take']>; copies: Buffer[] }> = [];
        for (const operation of operations) {
          if (operation.op === 'offer') {
            // The caller's memory is reused right after the offer, as a socket's read chunk is.
            const source = Buffer.from(operation.bytes);
            if (buffer.offerCopy(source, 1)) expected.push(Buffer.from(source));
            source.fill(0xee);
            continue;
          }
          const taken = buffer.take(operation.batches, Number.POSITIVE_INFINITY);
          const copies = expected.splice(0, taken.length);
          for (const [i, batch] of taken.entries()) {
            assert.ok(batch.payload.equals(copies[i] as Buffer), 'payload changed in the buffer');
          }
          held.push({ taken, copies });
          // Release the oldest taken batches first, checking they were not overwritten meanwhile.
          if (held.length > 2) {
            const oldest = held.shift()!;
            for (const [i, batch] of oldest.taken.entries()) {
              assert.ok(
                batch.payload.equals(oldest.copies[i] as Buffer),
                'payload overwritten before release',
              );
            }
            buffer.release(oldest.taken);
          }
        }
      },
    ),
    { numRuns: 60 },
  );
});
