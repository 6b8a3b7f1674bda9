import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { decodeProxyHeader } from './proxy-protocol.ts';
import {
  closeClient,
  closedPort,
  expectClosed,
  greeting,
  type RunningProxy,
  startBackend,
  startProxy,
  type TaggedBackend,
} from './test-support.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function backends(...names: string[]): Promise<TaggedBackend[]> {
  const started = await Promise.all(names.map((name) => startBackend(name)));
  for (const backend of started) cleanups.push(() => backend.close().catch(() => {}));
  return started;
}

/** A pool config with health checks slow enough not to interfere unless a test wants them. */
function pool(
  name: string,
  upstreams: Array<{ name: string; port: number }>,
  extra: Record<string, unknown> = {},
) {
  return {
    name,
    upstreams: upstreams.map((upstream) => ({ name: upstream.name, address: `127.0.0.1:${upstream.port}` })),
    healthCheck: { intervalMs: 60_000, timeoutMs: 1_000 },
    ...extra,
  };
}

async function proxyFor(
  pools: unknown[],
  listeners: Array<Record<string, unknown>> = [{}],
): Promise<RunningProxy> {
  const running = await startProxy({
    listeners: listeners.map((listener, i) => ({
      name: `l${i}`,
      listen: '127.0.0.1:0',
      pool: (pools[0] as { name: string }).name,
      ...listener,
    })),
    pools,
  });
  cleanups.push(() => running.stop());
  return running;
}

async function pick(port: number, localAddress?: string): Promise<string> {
  const { name, socket } = await greeting(port, localAddress);
  await closeClient(socket);
  return name;
}

test('round_robin spreads connections evenly over the healthy upstreams', async () => {
  const [a, b, c] = await backends('a', 'b', 'c');
  const running = await proxyFor([
    pool(
      'rr',
      [a!, b!, c!].map((x) => ({ name: x.name, port: x.port })),
    ),
  ]);
  const port = running.ports.get('l0')!;
  const picks: string[] = [];
  for (let i = 0; i < 9; i++) picks.push(await pick(port));
  assert.deepEqual(
    ['a', 'b', 'c'].map((name) => picks.filter((picked) => picked === name).length),
    [3, 3, 3],
  );
});

test('least_connections sends a new connection to the upstream with the fewest open', async () => {
  const [a, b] = await backends('a', 'b');
  const running = await proxyFor([
    pool(
      'lc',
      [a!, b!].map((x) => ({ name: x.name, port: x.port })),
      { policy: 'least_connections' },
    ),
  ]);
  const port = running.ports.get('l0')!;
  const held = [await greeting(port), await greeting(port)];
  assert.deepEqual(held.map((h) => h.name).sort(), ['a', 'b'], 'ties spread');
  const onA = held.find((h) => h.name === 'a')!;
  const third = await greeting(port);
  const busy = third.name;
  const fourth = await greeting(port);
  assert.notEqual(fourth.name, busy, 'the fourth goes to the upstream holding fewer');
  await closeClient(onA.socket);
  for (const h of [...held, third, fourth]) await closeClient(h.socket);
});

test('first sends everything to the first healthy upstream and fails over in order on a refused dial', async () => {
  const [b, c] = await backends('b', 'c');
  const dead = await closedPort();
  const running = await proxyFor([
    pool(
      'first',
      [
        { name: 'a', port: dead },
        { name: 'b', port: b!.port },
        { name: 'c', port: c!.port },
      ],
      { policy: 'first', passiveHealth: { maxFailures: 100 } },
    ),
  ]);
  const port = running.ports.get('l0')!;
  for (let i = 0; i < 4; i++) assert.equal(await pick(port), 'b');
  assert.equal(
    await running.sample('switchyard_proxy_dial_failures_total', { upstream: 'a', reason: 'refused' }),
    4,
  );
  assert.equal(await running.sample('switchyard_proxy_connections_total', { upstream: 'b' }), 4);
  assert.equal(await running.sample('switchyard_proxy_connections_total', { upstream: 'c' }), 0);
});

test('random picks only healthy upstreams and, over many connections, each of them', async () => {
  const [a, b, c] = await backends('a', 'b', 'c');
  const running = await proxyFor([
    pool(
      'rnd',
      [a!, b!, c!].map((x) => ({ name: x.name, port: x.port })),
      { policy: 'random' },
    ),
  ]);
  const port = running.ports.get('l0')!;
  const seen = new Set<string>();
  for (let i = 0; i < 60; i++) seen.add(await pick(port));
  assert.deepEqual([...seen].sort(), ['a', 'b', 'c']);
});

test('client_ip_hash keeps a client on one upstream and spreads different clients', async () => {
  const [a, b, c] = await backends('a', 'b', 'c');
  const running = await proxyFor([
    pool(
      'hash',
      [a!, b!, c!].map((x) => ({ name: x.name, port: x.port })),
      { policy: 'client_ip_hash' },
    ),
  ]);
  const port = running.ports.get('l0')!;
  const byClient = new Map<string, Set<string>>();
  for (let client = 1; client <= 24; client++) {
    const address = `127.0.0.${client + 1}`;
    const picks = new Set<string>();
    for (let i = 0; i < 3; i++) picks.add(await pick(port, address));
    byClient.set(address, picks);
  }
  for (const [address, picks] of byClient) assert.equal(picks.size, 1, `${address} moved between upstreams`);
  const used = new Set([...byClient.values()].flatMap((picks) => [...picks]));
  assert.ok(used.size >= 2, `24 clients all hashed onto ${[...used]}`);
});

test('a killed backend turns unhealthy within its checks, traffic moves off it, and it returns when restarted', async () => {
  const [a, b] = await backends('a', 'b');
  const running = await proxyFor([
    pool(
      'hc',
      [a!, b!].map((x) => ({ name: x.name, port: x.port })),
      {
        healthCheck: { intervalMs: 50, timeoutMs: 40, unhealthyThreshold: 2, healthyThreshold: 2 },
        passiveHealth: { enabled: false },
      },
    ),
  ]);
  const port = running.ports.get('l0')!;
  const health = () => running.proxy.pools.get('hc')!.upstreams.find((u) => u.name === 'a')!.health;
  await a!.close();
  await waitUntil(() => !health().healthy, 5_000, 'a never turned unhealthy');
  assert.equal(await running.sample('switchyard_proxy_upstream_healthy', { upstream: 'a' }), 0);
  for (let i = 0; i < 6; i++) assert.equal(await pick(port), 'b');
  await a!.restart();
  await waitUntil(() => health().healthy, 5_000, 'a never came back');
  assert.equal(await running.sample('switchyard_proxy_upstream_healthy', { upstream: 'a' }), 1);
  const picks = new Set<string>();
  for (let i = 0; i < 4; i++) picks.add(await pick(port));
  assert.deepEqual([...picks].sort(), ['a', 'b']);
  assert.ok(
    ((await running.sample('switchyard_proxy_health_checks_total', { upstream: 'a', result: 'failure' })) ??
      0) >= 2,
  );
});

test('with no upstream reachable the client is closed and counted as no_healthy_upstream', async () => {
  const running = await proxyFor([
    pool('none', [{ name: 'gone', port: await closedPort() }], {
      maxAttempts: 1,
      passiveHealth: { maxFailures: 1 },
    }),
  ]);
  const port = running.ports.get('l0')!;
  await expectClosed(port); // dial refused -> passive health marks it down
  await expectClosed(port); // no healthy upstream left
  assert.equal(
    await running.sample('switchyard_proxy_rejected_connections_total', {
      listener: 'l0',
      reason: 'no_healthy_upstream',
    }),
    2,
  );
  assert.equal(
    await running.sample('switchyard_proxy_dial_failures_total', { upstream: 'gone', reason: 'refused' }),
    1,
  );
  assert.equal(await running.sample('switchyard_proxy_upstream_healthy', { upstream: 'gone' }), 0);
});

test('an upstream ejected by dial failures rejoins the rotation when its cool-down timer ends it', async () => {
  const [b] = await backends('b');
  const running = await proxyFor([
    pool(
      'eject',
      [
        { name: 'a', port: await closedPort() },
        { name: 'b', port: b!.port },
      ],
      { policy: 'first', passiveHealth: { maxFailures: 1, cooldownMs: 1_500 } },
    ),
  ]);
  const port = running.ports.get('l0')!;
  const refusedDials = () =>
    running.sample('switchyard_proxy_dial_failures_total', { upstream: 'a', reason: 'refused' });
  assert.equal(await pick(port), 'b', 'a refused and was ejected; b took the client');
  assert.equal(await pick(port), 'b');
  assert.equal(await refusedDials(), 1, 'an ejected upstream is not dialled');
  // The gauge follows the cool-down timer; scraping it does not read the upstream's health.
  const deadline = performance.now() + 10_000;
  while ((await running.sample('switchyard_proxy_upstream_healthy', { upstream: 'a' })) !== 1) {
    assert.ok(performance.now() < deadline, 'the cool-down of a never ended');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(await pick(port), 'b');
  assert.equal(await refusedDials(), 2, 'a is back in the rotation and was dialled first');
});

test('clients that reset or leave at once, before or while being spliced, leave no socket or series behind', async () => {
  // An echo that says nothing first: a reset client is noticed by reading it, not by writing to it.
  const a = await startBackend('a', { greet: false });
  cleanups.push(() => a.close().catch(() => {}));
  const running = await proxyFor([pool('p', [{ name: 'a', port: a!.port }])]);
  const port = running.ports.get('l0')!;
  const clients = 60;
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.on('error', () => {});
      socket.resume();
      await once(socket, 'connect');
      // Half of them reset (RST), half close cleanly (FIN), both without waiting for the greeting.
      if (i % 2 === 0) socket.resetAndDestroy();
      else socket.end();
      await once(socket, 'close');
    }),
  );
  await waitUntil(
    () => running.proxy.openConnections === 0 && a!.sockets.size === 0,
    5_000,
    `still open: ${running.proxy.openConnections} proxied, ${a!.sockets.size} at the backend`,
  );
  assert.equal(await running.sample('switchyard_proxy_active_connections', { upstream: 'a' }), 0);
  assert.equal(await running.sample('switchyard_proxy_listener_active_connections', { listener: 'l0' }), 0);
  assert.equal(
    await running.sample('switchyard_proxy_accepted_connections_total', { listener: 'l0' }),
    clients,
  );
  const socket = connect({ host: '127.0.0.1', port });
  socket.write('still serving\n');
  const [echoed] = (await once(socket, 'data')) as [Buffer];
  assert.equal(echoed.toString(), 'still serving\n', 'the proxy still serves');
  await closeClient(socket);
});

test('half-close works both ways: a FIN from either side reaches the other while the reverse keeps flowing', async () => {
  // The backend reads until the client's FIN, then answers and closes its side.
  const [late] = await Promise.all([
    startBackend('late', {
      onSocket: (socket) => {
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).length} bytes after your FIN`));
      },
    }),
  ]);
  cleanups.push(() => late!.close());
  // The second backend closes its side first and keeps reading.
  let readAfterServerFin = 0;
  const early = await startBackend('early', {
    onSocket: (socket) => {
      socket.end('bye\n');
      socket.on('data', (chunk: Buffer) => {
        readAfterServerFin += chunk.length;
      });
      socket.on('end', () => socket.destroy());
    },
  });
  cleanups.push(() => early.close());
  const running = await proxyFor(
    [
      pool('late', [{ name: 'late', port: late!.port }]),
      pool('early', [{ name: 'early', port: early.port }]),
    ],
    [{ pool: 'late' }, { pool: 'early' }],
  );

  const client = connect({ host: '127.0.0.1', port: running.ports.get('l0')!, allowHalfOpen: true });
  client.setEncoding('utf8');
  let reply = '';
  client.on('data', (chunk: string) => {
    reply += chunk;
  });
  client.end(Buffer.alloc(5000, 1));
  await once(client, 'end');
  assert.equal(reply, 'got 5000 bytes after your FIN');

  const second = connect({ host: '127.0.0.1', port: running.ports.get('l1')!, allowHalfOpen: true });
  second.setEncoding('utf8');
  let farewell = '';
  second.on('data', (chunk: string) => {
    farewell += chunk;
  });
  await once(second, 'end');
  assert.equal(farewell, 'bye\n');
  second.end(Buffer.alloc(3000, 2));
  await once(second, 'close');
  await waitUntil(
    () => readAfterServerFin === 3000,
    5_000,
    `the backend read ${readAfterServerFin} of 3000 bytes`,
  );
});

test('a slow reader does not make the proxy buffer without bound', async () => {
  let upstreamSocket: Socket | undefined;
  const stalled = await startBackend('stalled', {
    onSocket: (socket) => {
      upstreamSocket = socket;
      socket.pause(); // never reads
    },
  });
  cleanups.push(() => stalled.close());
  const running = await proxyFor([pool('slow', [{ name: 'stalled', port: stalled.port }])]);
  const client = connect({ host: '127.0.0.1', port: running.ports.get('l0')! });
  await once(client, 'connect');
  const chunk = Buffer.alloc(64 * 1024, 3);
  let written = 0;
  // Write until the client's own socket pushes back three times: the kernel buffers on both hops
  // and the proxy's streams are full by then.
  for (let blocked = 0; blocked < 3 && written < 256 * 1024 * 1024; ) {
    written += chunk.length;
    if (!client.write(chunk)) {
      blocked += 1;
      await Promise.race([once(client, 'drain'), new Promise((resolve) => setTimeout(resolve, 200))]);
    }
  }
  const buffered = running.proxy.bufferedBytes;
  assert.ok(
    buffered <= 1024 * 1024,
    `the proxy holds ${buffered} bytes in memory for a reader that never reads`,
  );
  assert.ok(written >= 1024 * 1024, `only ${written} bytes could be written`);
  upstreamSocket?.destroy();
  client.destroy();
});

test('max connections per listener is enforced and the excess is counted', async () => {
  const [a] = await backends('a');
  const running = await proxyFor([pool('p', [{ name: 'a', port: a!.port }])], [{ maxConnections: 2 }]);
  const port = running.ports.get('l0')!;
  const held = [await greeting(port), await greeting(port)];
  await expectClosed(port);
  assert.equal(
    await running.sample('switchyard_proxy_rejected_connections_total', {
      listener: 'l0',
      reason: 'max_connections',
    }),
    1,
  );
  assert.equal(await running.sample('switchyard_proxy_listener_active_connections', { listener: 'l0' }), 2);
  for (const h of held) await closeClient(h.socket);
  await waitUntil(() => running.proxy.openConnections === 0, 5_000, 'connections never closed');
  assert.equal(await pick(port), 'a', 'a slot is free again');
});

test('after known traffic the scraped metrics equal the traffic exactly', async () => {
  const echo = await startBackend('echo', { greet: false });
  cleanups.push(() => echo.close());
  const running = await proxyFor([pool('exact', [{ name: 'echo', port: echo.port }])]);
  const port = running.ports.get('l0')!;
  const sizes = [1, 1000, 65_536, 300_000];
  for (const size of sizes) {
    const client = connect({ host: '127.0.0.1', port });
    let received = 0;
    client.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received === size) client.end();
    });
    client.write(Buffer.alloc(size, 9));
    await once(client, 'close');
    assert.equal(received, size);
  }
  await waitUntil(() => running.proxy.openConnections === 0, 5_000, 'connections still open');
  const total = sizes.reduce((sum, size) => sum + size, 0);
  const labels = { pool: 'exact', upstream: 'echo' };
  assert.equal(await running.sample('switchyard_proxy_connections_total', labels), 4);
  assert.equal(
    await running.sample('switchyard_proxy_bytes_total', { ...labels, direction: 'client_to_upstream' }),
    total,
  );
  assert.equal(
    await running.sample('switchyard_proxy_bytes_total', { ...labels, direction: 'upstream_to_client' }),
    total,
  );
  assert.equal(
    await running.sample('switchyard_proxy_connection_duration_seconds_count', { pool: 'exact' }),
    4,
  );
  assert.equal(await running.sample('switchyard_proxy_active_connections', labels), 0);
  assert.equal(await running.sample('switchyard_proxy_accepted_connections_total', { listener: 'l0' }), 4);
  for (const reason of ['no_healthy_upstream', 'max_connections', 'draining']) {
    assert.equal(
      await running.sample('switchyard_proxy_rejected_connections_total', { listener: 'l0', reason }),
      0,
    );
  }
});

test('bytes of open connections are counted at scrape time, before they close', async () => {
  const echo = await startBackend('echo', { greet: false });
  cleanups.push(() => echo.close());
  const running = await proxyFor([pool('live', [{ name: 'echo', port: echo.port }])]);
  const client = connect({ host: '127.0.0.1', port: running.ports.get('l0')! });
  let received = 0;
  client.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  client.write(Buffer.alloc(12_345, 1));
  await waitUntil(() => received === 12_345, 5_000, 'echo incomplete');
  const labels = { pool: 'live', upstream: 'echo' };
  assert.equal(
    await running.sample('switchyard_proxy_bytes_total', { ...labels, direction: 'client_to_upstream' }),
    12_345,
  );
  assert.equal(
    await running.sample('switchyard_proxy_bytes_total', { ...labels, direction: 'upstream_to_client' }),
    12_345,
  );
  assert.equal(await running.sample('switchyard_proxy_active_connections', labels), 1);
  await closeClient(client);
});

test('PROXY protocol v1 and v2 headers tell the upstream who the client is', async () => {
  for (const version of ['v1', 'v2'] as const) {
    let header: ReturnType<typeof decodeProxyHeader> | undefined;
    const seen = new Promise<void>((resolve) => {
      void startBackend(`pp-${version}`, {
        onSocket: (socket) => {
          socket.once('data', (chunk: Buffer) => {
            header = decodeProxyHeader(chunk);
            socket.end();
            resolve();
          });
        },
      }).then((backend) => {
        cleanups.push(() => backend.close());
        void proxyFor([
          pool(`pp${version}`, [{ name: 'pp', port: backend.port }], { proxyProtocol: version }),
        ]).then((running) => {
          const client = connect({
            host: '127.0.0.1',
            port: running.ports.get('l0')!,
            localAddress: '127.0.0.9',
          });
          client.on('error', () => {});
          client.resume();
        });
      });
    });
    await seen;
    assert.equal(header?.version, version === 'v1' ? 1 : 2);
    assert.equal(header?.addresses?.sourceAddress, '127.0.0.9');
    assert.equal(header?.addresses?.destinationAddress, '127.0.0.1');
  }
});

test('an idle connection is closed after the pool idle timeout', async () => {
  const [a] = await backends('a');
  const running = await proxyFor([pool('idle', [{ name: 'a', port: a!.port }], { idleTimeoutMs: 200 })]);
  const { socket } = await greeting(running.ports.get('l0')!);
  const started = performance.now();
  await once(socket, 'close');
  const waited = performance.now() - started;
  assert.ok(waited >= 150, `closed after ${waited} ms, before the idle timeout`);
});

test('a reload adds and removes upstreams, keeps open connections and keeps counters monotonic', async () => {
  const [a, b] = await backends('a', 'b');
  const first = {
    name: 'r',
    upstreams: [{ name: 'a', address: `127.0.0.1:${a!.port}` }],
    healthCheck: { intervalMs: 60_000 },
  };
  const running = await proxyFor([first]);
  const port = running.ports.get('l0')!;
  assert.equal(await pick(port), 'a');
  const open = await greeting(port);
  const listeners = [{ name: 'l0', listen: '127.0.0.1:0', pool: 'r' }];
  // Swap a for b: the open connection to a stays up, new connections go to b.
  await running.proxy.reload(
    (await import('./test-support.ts')).proxyConfig({
      listeners,
      pools: [{ ...first, upstreams: [{ name: 'b', address: `127.0.0.1:${b!.port}` }] }],
    }),
  );
  // The reloaded listener kept its name and address "127.0.0.1:0": it is the same socket.
  assert.equal(await pick(port), 'b');
  open.socket.write('still here\n');
  const [echo] = (await once(open.socket, 'data')) as [Buffer];
  assert.equal(echo.toString(), 'still here\n');
  assert.equal(await running.sample('switchyard_proxy_connections_total', { upstream: 'a' }), 2);
  await closeClient(open.socket);
  await waitUntil(() => running.proxy.openConnections === 0, 5_000, 'connections still open');
  assert.equal(
    await running.sample('switchyard_proxy_active_connections', { upstream: 'a' }),
    0,
    'a drained',
  );
  // Bring a back: its counter continues where it was.
  await running.proxy.reload(
    (await import('./test-support.ts')).proxyConfig({
      listeners,
      pools: [
        {
          ...first,
          upstreams: [
            { name: 'a', address: `127.0.0.1:${a!.port}` },
            { name: 'b', address: `127.0.0.1:${b!.port}` },
          ],
        },
      ],
    }),
  );
  assert.equal(await running.sample('switchyard_proxy_connections_total', { upstream: 'a' }), 2);
});

test('stopping drains: no new clients, open connections finish, then drained resolves', async () => {
  const [a] = await backends('a');
  const running = await proxyFor([pool('d', [{ name: 'a', port: a!.port }])]);
  const port = running.ports.get('l0')!;
  const open = await greeting(port);
  running.proxy.stopAccepting();
  const refused = connect({ host: '127.0.0.1', port });
  const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  assert.equal(error.code, 'ECONNREFUSED');
  let drained = false;
  const draining = running.proxy.drained().then(() => {
    drained = true;
  });
  open.socket.write('x');
  await once(open.socket, 'data');
  assert.equal(drained, false, 'drained while a connection was open');
  await closeClient(open.socket);
  await draining;
});

async function waitUntil(condition: () => boolean, timeoutMs: number, message: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(message);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
