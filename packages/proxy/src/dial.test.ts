import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { DIAL_TIMEOUT, type DialDone, dialFailureReason, dialTcp } from './dial.ts';
import { loadLibuvTcp, peerAddress, type TcpHandle } from './libuv-tcp.ts';
import { closedPort } from './test-support.ts';

const tcp = loadLibuvTcp();
const cleanups: Array<() => void | Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

function dial(
  host: string,
  port: number,
  timeoutMs = 2_000,
): Promise<{ error?: string; handle?: TcpHandle }> {
  return new Promise((resolve) => {
    const done: DialDone = (error, handle) => resolve({ ...(error && { error }), ...(handle && { handle }) });
    const family = host.includes(':') ? 6 : /^[\d.]+$/.test(host) ? 4 : 0;
    dialTcp(tcp, host, family, port, timeoutMs, done);
  });
}

async function listening(server: Server, host = '127.0.0.1'): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  cleanups.push(() => void server.close());
  return (server.address() as { port: number }).port;
}

test('a dial to a listening address yields a connected handle', async () => {
  const accepted: Socket[] = [];
  const server = createServer((socket) => accepted.push(socket));
  const port = await listening(server);
  const { error, handle } = await dial('127.0.0.1', port);
  assert.equal(error, undefined);
  assert.equal(peerAddress(handle as TcpHandle)?.port, port);
  handle?.close();
  for (const socket of accepted) socket.destroy();
});

test('an IPv6 address and a host name are dialled too (the name looked up)', async () => {
  const server = createServer((socket) => socket.destroy());
  const port = await listening(server, '::');
  for (const host of ['::1', 'localhost']) {
    const { error, handle } = await dial(host, port);
    assert.equal(error, undefined, `dial ${host}`);
    handle?.close();
  }
});

test('a refused dial reports ECONNREFUSED, counted as refused', async () => {
  const { error, handle } = await dial('127.0.0.1', await closedPort());
  assert.equal(handle, undefined);
  assert.equal(error, 'ECONNREFUSED');
  assert.equal(dialFailureReason(error as string), 'refused');
});

test('a name that does not resolve reports ENOTFOUND, counted as unreachable', async () => {
  const { error } = await dial('no-such-host.invalid', 80);
  assert.equal(error, 'ENOTFOUND');
  assert.equal(dialFailureReason(error as string), 'unreachable');
});

/**
 * A listener whose accept queue is full: it never accepts, and with backlog 0 the kernel queues one
 * connection and drops later SYNs, so a dial hangs until its deadline. Node always accepts, so the
 * listener is a Python process.
 */
async function fullBacklogPort(): Promise<number> {
  const child = spawn(
    'python3',
    [
      '-c',
      "import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()",
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  cleanups.push(() => void child.kill());
  const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  const port = Number(line);
  // Fill the queue: this one completes its handshake and waits, never accepted.
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  cleanups.push(() => void socket.destroy());
  await once(socket, 'connect');
  return port;
}

test('a dial that gets no answer fails at its deadline as ETIMEDOUT, counted as timeout', async () => {
  const port = await fullBacklogPort();
  const started = performance.now();
  const { error, handle } = await dial('127.0.0.1', port, 300);
  const elapsedMs = performance.now() - started;
  assert.equal(handle, undefined);
  assert.equal(error, DIAL_TIMEOUT);
  assert.equal(dialFailureReason(error as string), 'timeout');
  assert.ok(elapsedMs >= 290, `gave up after ${elapsedMs} ms, before its 300 ms deadline`);
});

test('dial failure names map to the closed set of reasons', () => {
  const cases: Record<string, string> = {
    ECONNREFUSED: 'refused',
    ECONNRESET: 'reset',
    EPIPE: 'reset',
    EHOSTUNREACH: 'unreachable',
    ENETUNREACH: 'unreachable',
    EADDRNOTAVAIL: 'unreachable',
    ENOTFOUND: 'unreachable',
    EAI_AGAIN: 'unreachable',
    ETIMEDOUT: 'timeout',
    EMFILE: 'other',
    UNKNOWN: 'other',
  };
  for (const [error, reason] of Object.entries(cases)) assert.equal(dialFailureReason(error), reason, error);
});
