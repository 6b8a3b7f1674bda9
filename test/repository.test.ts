import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderRepositoryMetricsReference } from '../scripts/metrics-docs.ts';
// @ts-expect-error: a plain .mjs script (it must run on Node 20 to refuse it), no type declarations
import { nodeVersionProblem } from '../scripts/require-node24.mjs';

const root = new URL('../', import.meta.url);

test('docs/metrics.md is what `npm run docs:metrics` writes from the catalogs', () => {
  const committed = readFileSync(new URL('docs/metrics.md', root), 'utf8');
  assert.ok(
    committed === renderRepositoryMetricsReference(),
    'docs/metrics.md is stale: run `npm run docs:metrics` and commit the result',
  );
});

test('the lock file holds one copy of each OpenTelemetry SDK package, at the versions the exporters pin', () => {
  const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8')) as {
    packages: Record<string, { version?: string }>;
  };
  const pinned: Record<string, string> = {
    '@opentelemetry/sdk-metrics': '3.1.0',
    '@opentelemetry/core': '3.1.0',
    '@opentelemetry/resources': '3.1.0',
    '@opentelemetry/api': '1.10.0',
  };
  for (const [name, version] of Object.entries(pinned)) {
    const copies = Object.entries(lock.packages).filter(([path]) => path.endsWith(`node_modules/${name}`));
    assert.deepEqual(
      copies.map(([path, entry]) => [path, entry.version]),
      [[`node_modules/${name}`, version]],
      `${name}: npm ls would show ${copies.length} copies`,
    );
  }
});

test('the Node guard refuses Node 20 with a message that says how to run on Node 24', () => {
  const problem = nodeVersionProblem('v20.20.2', '/usr/bin/node') as string | undefined;
  assert.match(problem ?? '', /needs Node 24 \(found v20\.20\.2 at \/usr\/bin\/node\)/);
  assert.match(problem ?? '', /npm test/);
  assert.equal(nodeVersionProblem('v24.21.0', '/x/node'), undefined);
  assert.equal(nodeVersionProblem(process.version, process.execPath), undefined, 'this run is on Node >= 24');
});
