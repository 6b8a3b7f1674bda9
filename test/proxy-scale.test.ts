import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { echoOnce } from './support/echo-client.ts';
import { type Family, parseExposition, sampleValue } from './support/exposition.ts';
import { checkExposition } from './support/openmetrics.ts';
import { checkMetrics } from './support/promtool.ts';
import { spawnWorker, type WorkerProcess } from './support/worker-process.ts';

const proxyMain = fileURLToPath(new URL('../packages/proxy/src/main.ts', import.meta.url));
const POOLS = 10;
const UPSTREAMS_PER_POOL = 1_000;
/** Startup, reload and a scrape each handle 10,000 upstreams: seconds, not the 20 s default. */
const SLOW_MS = 120_000;

/** What docs/metrics.md says each upstream adds; the scrape must agree with the doc. */
function documentedSeriesPerUpstream(): number {
  const doc = readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8');
  const row = /^\| upstream \(`pool`, `upstream`\) \| (\d+) from the start \|/m.exec(doc);
  assert.ok(row !== null, 'docs/metrics.md has no sizing row for each upstream');
  return Number(row[1]);
}

async function echoBackend(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

function upstreamName(prefix: string, i: number): string {
  return `${prefix}${String(i).padStart(4, '0')}`;
}

/**
 * Ten pools of a thousand upstreams, each pool behind its own listener, the upstreams spread over
 * the few real backends. Pool p0 takes `p0Upstreams` instead; it balances `first`, so its next
 * connection shows which upstream leads its list.
 */
function scaleConfig(ports: readonly number[], p0Upstreams: readonly string[]): object {
  const upstreams = (names: readonly string[]) =>
    names.map((name, i) => ({ name, address: `127.0.0.1:${ports[i % ports.length]}` }));
  const all = Array.from({ length: UPSTREAMS_PER_POOL }, (_, i) => upstreamName('u', i));
  return {
    telemetry: { admin: { port: 0 } },
    listeners: Array.from({ length: POOLS }, (_, p) => ({
      name: `l${p}`,
      listen: '127.0.0.1:0',
      pool: `p${p}`,
    })),
    pools: Array.from({ length: POOLS }, (_, p) => ({
      name: `p${p}`,
      policy: p === 0 ? 'first' : 'round_robin',
      upstreams: upstreams(p === 0 ? p0Upstreams : all),
      // Checks stay on, spread over ten minutes: about 17 a second for all 10,000 upstreams.
      healthCheck: { intervalMs: '10m' },
    })),
    shutdownGraceMs: '5s',
  };
}

/** Samples of the proxy's families that carry an `upstream` label, and the families they are in. */
function perUpstreamSeries(families: Map<string, Family>): { samples: number; families: Set<string> } {
  let samples = 0;
  const names = new Set<string>();
  for (const family of families.values()) {
    if (!family.name.startsWith('switchyard_proxy_')) continue;
    for (const sample of family.samples) {
      if (sample.labels.upstream === undefined) continue;
      samples += 1;
      names.add(family.name);
    }
  }
  return { samples, families: names };
}

describe('a proxy with 10,000 upstreams in 10 pools of 1,000', () => {
  const payload = Buffer.from('through one of ten thousand\n');
  let backends: Array<{ server: Server; port: number }>;
  let ports: number[];
  let file: string;
  let proxy: WorkerProcess;
  let adminUrl: string;
  const listenPorts = new Map<string, number>();

  before(async () => {
    backends = await Promise.all([echoBackend(), echoBackend(), echoBackend(), echoBackend()]);
    ports = backends.map((backend) => backend.port);
    file = join(mkdtempSync(join(tmpdir(), 'switchyard-proxy-scale-')), 'proxy.json');
    const p0 = Array.from({ length: UPSTREAMS_PER_POOL }, (_, i) => upstreamName('u', i));
    writeFileSync(file, JSON.stringify(scaleConfig(ports, p0)));
    proxy = spawnWorker(proxyMain, { SWITCHYARD_DEMO_TRAFFIC: '0' }, ['--config', file]);
    const admin = await proxy.waitForLog((line) => line.msg === 'admin server listening', SLOW_MS);
    await proxy.waitForLog((line) => line.msg === 'proxy serving', SLOW_MS);
    for (const line of proxy.logs.filter((logged) => logged.msg === 'proxy listener ready')) {
      listenPorts.set(line.listener as string, line.port as number);
    }
    adminUrl = `http://127.0.0.1:${admin.port}`;
  });
  after(async () => {
    await proxy.stop('SIGKILL');
    for (const backend of backends) backend.server.close();
  });

  const scrape = async (): Promise<string> => {
    const response = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(SLOW_MS) });
    assert.equal(response.status, 200);
    return response.text();
  };

  test('it starts and proxies connections end to end through every pool', async () => {
    assert.equal(listenPorts.size, POOLS);
    for (const port of listenPorts.values()) assert.deepEqual(await echoOnce(port, payload), payload);
    const families = parseExposition(await scrape());
    assert.equal(
      sampleValue(families, 'switchyard_proxy_connections_total', { pool: 'p0', upstream: 'u0000' }),
      1,
      'p0 balances first: u0000 took its connection',
    );
  });

  test('/metrics passes promtool and holds the documented series for every upstream', async () => {
    const text = await scrape();
    const verdict = await checkMetrics(text);
    assert.deepEqual(verdict.problems, [], verdict.output.slice(0, 4000));
    const families = parseExposition(text);
    const perUpstream = perUpstreamSeries(families);
    assert.equal(perUpstream.samples, documentedSeriesPerUpstream() * POOLS * UPSTREAMS_PER_POOL);
    assert.ok(
      !perUpstream.families.has('switchyard_proxy_connection_duration_seconds'),
      'connection durations are per pool, never per upstream',
    );
    const durationCounts = families
      .get('switchyard_proxy_connection_duration_seconds')
      ?.samples.filter((sample) => sample.name.endsWith('_count'));
    assert.deepEqual(
      durationCounts?.map((sample) => Object.keys(sample.labels).sort()),
      new Array(POOLS).fill(['pool']),
      'one duration histogram per pool that proxied a connection, labelled by pool only',
    );
  });

  test('/metrics in OpenMetrics passes Prometheus 3.16’s own parser with the same series', async () => {
    const response = await fetch(`${adminUrl}/metrics`, {
      headers: { accept: 'application/openmetrics-text;version=1.0.0' },
      signal: AbortSignal.timeout(SLOW_MS),
    });
    assert.equal(
      response.headers.get('content-type'),
      'application/openmetrics-text; version=1.0.0; charset=utf-8',
    );
    const check = await checkExposition(await response.text(), 'openmetrics');
    assert.deepEqual(check.problems.slice(0, 20), []);
    const perUpstream = check.samples.filter((sample) => sample.labels.upstream?.startsWith('u') === true);
    assert.equal(perUpstream.length, documentedSeriesPerUpstream() * POOLS * UPSTREAMS_PER_POOL);
  });

  test('SIGHUP reloads a changed config: removed upstreams leave, added ones take traffic, counted as success', async () => {
    // p0 drops u0000..u0099 and takes n0000..n0099 at the head of its list.
    const added = Array.from({ length: 100 }, (_, i) => upstreamName('n', i));
    const kept = Array.from({ length: UPSTREAMS_PER_POOL - 100 }, (_, i) => upstreamName('u', i + 100));
    writeFileSync(file, JSON.stringify(scaleConfig(ports, [...added, ...kept])));
    proxy.child.kill('SIGHUP');
    const outcome = await proxy.waitForLog(
      (line) => line.msg === 'config reloaded' || line.msg.startsWith('config reload failed'),
      SLOW_MS,
    );
    assert.equal(outcome.msg, 'config reloaded', String(outcome.error));
    assert.deepEqual(await echoOnce(listenPorts.get('l0')!, payload), payload);
    const text = await scrape();
    const families = parseExposition(text);
    assert.equal(sampleValue(families, 'switchyard_proxy_config_reloads_total', { result: 'success' }), 1);
    const connectionsTo = (upstream: string) =>
      sampleValue(families, 'switchyard_proxy_connections_total', { pool: 'p0', upstream });
    assert.equal(connectionsTo('n0000'), 1, 'the added upstream at the head of p0 took the connection');
    assert.equal(connectionsTo('u0000'), 1, 'the removed upstream keeps its final count');
    assert.equal(
      sampleValue(families, 'switchyard_proxy_upstream_healthy', { pool: 'p0', upstream: 'n0099' }),
      1,
    );
    // Removed names keep their series until a restart: 10,000 + the 100 added.
    assert.equal(
      perUpstreamSeries(families).samples,
      documentedSeriesPerUpstream() * (POOLS * UPSTREAMS_PER_POOL + added.length),
    );
    const verdict = await checkMetrics(text);
    assert.deepEqual(verdict.problems, [], verdict.output.slice(0, 4000));
  });
});
