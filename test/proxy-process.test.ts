import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseExposition, sampleValue } from './support/exposition.ts';
import { checkMetrics } from './support/promtool.ts';
import { spawnWorker, type WorkerProcess } from './support/worker-process.ts';

const proxyMain = fileURLToPath(new URL('../packages/proxy/src/main.ts', import.meta.url));

/** A backend that answers every connection with its name, then echoes. */
async function backend(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

async function greet(port: number): Promise<{ name: string; socket: Socket }> {
  const socket = connect({ host: '127.0.0.1', port });
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return { name: chunk.toString().trim(), socket };
}

async function closeSocket(socket: Socket): Promise<void> {
  const closed = once(socket, 'close');
  socket.end();
  await closed;
}

function config(upstreams: Array<{ name: string; port: number }>): object {
  return {
    telemetry: { admin: { port: 0 } },
    listeners: [{ name: 'front', listen: '127.0.0.1:0', pool: 'app' }],
    pools: [
      {
        name: 'app',
        upstreams: upstreams.map((upstream) => ({
          name: upstream.name,
          address: `127.0.0.1:${upstream.port}`,
        })),
        healthCheck: { intervalMs: '30s' },
      },
    ],
    shutdownGraceMs: '20s',
  };
}

describe('the proxy as a process', () => {
  let one: { server: Server; port: number };
  let two: { server: Server; port: number };
  let file: string;
  let proxy: WorkerProcess;
  let adminUrl: string;
  let listenPort: number;

  before(async () => {
    one = await backend('one');
    two = await backend('two');
    file = join(mkdtempSync(join(tmpdir(), 'switchyard-proxy-')), 'proxy.json');
    writeFileSync(file, JSON.stringify(config([{ name: 'one', port: one.port }])));
    proxy = spawnWorker(proxyMain, { SWITCHYARD_DEMO_TRAFFIC: '0' }, ['--config', file]);
    const admin = await proxy.waitForLog((line) => line.msg === 'admin server listening');
    const listener = await proxy.waitForLog((line) => line.msg === 'proxy listener ready');
    await proxy.waitForLog((line) => line.msg === 'proxy serving');
    adminUrl = `http://127.0.0.1:${admin.port}`;
    listenPort = listener.port as number;
  });
  after(async () => {
    await proxy.stop('SIGKILL');
    one.server.close();
    two.server.close();
  });

  const scrape = async () => parseExposition(await (await fetch(`${adminUrl}/metrics`)).text());

  test('/metrics passes promtool and starts every configured series at zero', async () => {
    const text = await (await fetch(`${adminUrl}/metrics`)).text();
    const verdict = await checkMetrics(text);
    assert.deepEqual(verdict.problems, [], verdict.output);
    const families = parseExposition(text);
    assert.equal(
      sampleValue(families, 'switchyard_proxy_connections_total', { pool: 'app', upstream: 'one' }),
      0,
    );
    assert.equal(
      sampleValue(families, 'switchyard_proxy_upstream_healthy', { pool: 'app', upstream: 'one' }),
      1,
    );
    for (const reason of ['timeout', 'refused', 'reset', 'unreachable', 'other']) {
      assert.equal(
        sampleValue(families, 'switchyard_proxy_dial_failures_total', { upstream: 'one', reason }),
        0,
        reason,
      );
    }
    assert.equal(sampleValue(families, 'switchyard_proxy_config_reloads_total', { result: 'success' }), 0);
  });

  test('SIGHUP reloads the file: a new upstream takes traffic, open connections live on, counters continue', async () => {
    const open = await greet(listenPort);
    assert.equal(open.name, 'one');
    writeFileSync(
      file,
      JSON.stringify(
        config([
          { name: 'one', port: one.port },
          { name: 'two', port: two.port },
        ]),
      ),
    );
    proxy.child.kill('SIGHUP');
    await proxy.waitForLog((line) => line.msg === 'config reloaded');
    const names = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const { name, socket } = await greet(listenPort);
      names.add(name);
      await closeSocket(socket);
    }
    assert.deepEqual([...names].sort(), ['one', 'two']);
    open.socket.write('ping\n');
    const [echo] = (await once(open.socket, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'ping\n', 'the connection opened before the reload still works');
    await closeSocket(open.socket);
    const families = await scrape();
    assert.equal(sampleValue(families, 'switchyard_proxy_config_reloads_total', { result: 'success' }), 1);
    const total =
      (sampleValue(families, 'switchyard_proxy_connections_total', { upstream: 'one' }) ?? 0) +
      (sampleValue(families, 'switchyard_proxy_connections_total', { upstream: 'two' }) ?? 0);
    assert.equal(total, 5, 'one before the reload plus four after, none lost or reset');
  });

  test('a bad config on SIGHUP is refused and counted; the running config stays in force', async () => {
    writeFileSync(
      file,
      JSON.stringify({ listeners: [{ name: 'front', listen: 'nowhere', pool: 'app' }], pools: [] }),
    );
    proxy.child.kill('SIGHUP');
    const failure = await proxy.waitForLog((line) => line.msg.startsWith('config reload failed'));
    assert.match(String(failure.error), /listeners\.0\.listen/);
    assert.equal(
      sampleValue(await scrape(), 'switchyard_proxy_config_reloads_total', { result: 'failure' }),
      1,
    );
    const { socket } = await greet(listenPort);
    await closeSocket(socket);
  });

  test('SIGTERM turns /readyz 503, refuses new clients, drains the open one and exits 0', async () => {
    const open = await greet(listenPort);
    proxy.child.kill('SIGTERM');
    await proxy.waitForLog((line) => line.msg === 'shutting down');
    assert.equal((await fetch(`${adminUrl}/readyz`)).status, 503);
    const refused = connect({ host: '127.0.0.1', port: listenPort });
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNREFUSED');
    open.socket.write('last words\n');
    const [echo] = (await once(open.socket, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'last words\n');
    await closeSocket(open.socket);
    assert.deepEqual(await proxy.exited, { code: 0, signal: null });
    assert.equal(proxy.logs.find((line) => line.msg === 'shutdown complete')?.outcome, 'drained');
  });
});

test('the proxy refuses a config whose listener names an undefined pool, with exit code 2', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'switchyard-proxy-')), 'bad.json');
  writeFileSync(
    file,
    JSON.stringify({
      listeners: [{ name: 'front', listen: '127.0.0.1:0', pool: 'api' }],
      pools: [{ name: 'app', upstreams: [{ name: 'a', address: '127.0.0.1:1' }] }],
    }),
  );
  const proxy = spawnWorker(proxyMain, {}, ['--config', file]);
  assert.deepEqual(await proxy.exited, { code: 2, signal: null });
  const message = proxy.logs.find((line) => line.level === 'error')?.msg ?? '';
  assert.match(message, /listener "front" routes to pool "api", which is not defined; defined pools: app/);
});
