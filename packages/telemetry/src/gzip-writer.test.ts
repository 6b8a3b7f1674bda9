import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { GzipWriter } from './gzip-writer.ts';

function gzipped(chunks: readonly Buffer[]): Buffer {
  const writer = new GzipWriter();
  return Buffer.concat([writer.header(), ...chunks.map((chunk) => writer.chunk(chunk)), writer.end()]);
}

test('chunks compressed apart make one gzip member that decompresses to their concatenation', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 5000 }), { maxLength: 12 }), (arrays) => {
      const chunks = arrays.map((array) => Buffer.from(array));
      assert.deepEqual(gunzipSync(gzipped(chunks)), Buffer.concat(chunks));
    }),
    { numRuns: 200 },
  );
});

test('the gzip tool accepts the stream and finds one member with the right size and CRC', () => {
  const text = Buffer.from('switchyard_bench_connections_total{upstream="a"} 1\n'.repeat(4000));
  const body = gzipped([text.subarray(0, 70_000), text.subarray(70_000)]);
  // `gzip -t` checks the trailer's CRC-32 and length.
  execFileSync('gzip', ['-t'], { input: body });
  assert.equal(execFileSync('gzip', ['-dc'], { input: body }).toString(), text.toString());
  assert.ok(body.length < text.length / 10, `compressed to ${body.length} of ${text.length} bytes`);
});
