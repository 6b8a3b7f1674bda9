import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { formatPrivateKey, formatPublicKey, generateNodeKeyPair, parsePublicKey } from '@switchyard/relay';
import { freePort } from './free-port.ts';

/*
 * Real Go DERP peers for interop tests, built by scripts/build-go-tools.sh: Tailscale's `derper`
 * (test/tools/derper) and `derpclient`, a tailscale.com/derp/derphttp client driven by JSON lines
 * (test/tools/derpclient/main.go documents the protocol).
 */

const goTools = new URL('../../.cache/go-tools/', import.meta.url);
export const derperBinary = fileURLToPath(new URL('derper', goTools));
export const derpClientBinary = fileURLToPath(new URL('derpclient', goTools));

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function spawnGoTool(binary: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run scripts/build-go-tools.sh`);
  const child = spawn(binary, args, { env: { PATH: process.env.PATH, ...env }, stdio: 'pipe' });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Collects a child's stderr, keeping the tail for error messages. */
function stderrTail(child: ChildProcess): () => string {
  let tail = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-4000);
  });
  return () => tail;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const escalation = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(escalation);
}

export interface RunningDerper {
  /** `http://127.0.0.1:<port>/derp` (Upgrade: DERP). */
  readonly url: string;
  /** The same path as `ws://`: WebSocket with the `derp` subprotocol. */
  readonly webSocketUrl: string;
  /** The key derper logs in with, written to its config file by this helper. */
  readonly publicKey: Uint8Array;
  stop(): Promise<void>;
}

/**
 * Starts Tailscale's derper on a free loopback port, plain HTTP, no STUN, with a config file (its
 * node key) in a fresh temporary directory that is also its HOME, so that no file of this machine
 * (a default mesh key under ~/keys) reaches it. Resolves once `/derp/probe` answers.
 */
export async function startDerper(): Promise<RunningDerper> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-derper-'));
  const keys = generateNodeKeyPair();
  const config = join(dir, 'derper.json');
  writeFileSync(config, JSON.stringify({ PrivateKey: formatPrivateKey(keys.secretKey) }));
  const port = await freePort();
  // A port other than 443 without -certmode=manual serves plain HTTP; -http-port only applies to TLS.
  const args = ['-a', `127.0.0.1:${port}`, '-c', config, '-stun=false', '-http-port=-1', '-home=blank'];
  const child = spawnGoTool(derperBinary, args, { HOME: dir });
  const stderr = stderrTail(child);
  const stop = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForProbe(`http://127.0.0.1:${port}/derp/probe`, child);
  } catch (error) {
    await stop();
    throw new Error(`derper did not start: ${(error as Error).message}\n--- derper stderr ---\n${stderr()}`);
  }
  return {
    url: `http://127.0.0.1:${port}/derp`,
    webSocketUrl: `ws://127.0.0.1:${port}/derp`,
    publicKey: keys.publicKey,
    stop,
  };
}

/**
 * derper logs "serving on" just before it binds and says nothing after, so readiness is the first
 * probe that connects; each refused attempt waits for the next turn of a short interval.
 */
async function waitForProbe(url: string, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`derper exited with code ${child.exitCode}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      if (response.ok) return;
      throw new Error(`${url} answered ${response.status}`);
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One JSON line printed by derpclient. */
export interface PeerEvent {
  readonly event: string;
  readonly [field: string]: unknown;
}

export interface GoDerpPeer {
  readonly publicKey: Uint8Array;
  /** The relay key the Go client saw at login. */
  readonly serverKey: Uint8Array;
  send(to: Uint8Array, packet: Uint8Array): void;
  /** derphttp's Ping: resolves with the round-trip time in ns once the pong came back. */
  ping(): Promise<number>;
  /** The next packet the Go client received (started with recv `print`). */
  receive(): Promise<{ source: Uint8Array; packet: Uint8Array }>;
  /**
   * derpclient's flood: `count` packets of `size` bytes (at least 16: sequence number and send
   * time) to `to`, as fast as derphttp writes them; resolves once the last is written.
   */
  flood(to: Uint8Array, count: number, size: number): Promise<{ count: number; elapsedNs: number }>;
  /** Packets received so far, once at least `waitFor` have arrived or `timeoutMs` has passed. */
  stats(waitFor?: number, timeoutMs?: number): Promise<{ received: number; bytesReceived: number }>;
  /** The next not yet consumed event of this kind; rejects when the client reports an error first. */
  nextEvent(kind: string, timeoutMs?: number): Promise<PeerEvent>;
  /** Sends the close command and resolves with the exit code. */
  close(): Promise<number | null>;
  /** Ends the process whatever its state. */
  kill(): Promise<void>;
}

export interface GoDerpPeerOptions {
  /** `print` (default): one event per packet; `count`: only counted, for load. */
  readonly recv?: 'print' | 'count';
}

/**
 * Starts derpclient against `url` (http:// for Upgrade: DERP, ws:// for WebSocket) and resolves
 * once it has logged in and printed its keys.
 */
export async function startGoDerpPeer(url: string, options: GoDerpPeerOptions = {}): Promise<GoDerpPeer> {
  const child = spawnGoTool(derpClientBinary, ['-url', url, `-recv=${options.recv ?? 'print'}`]);
  const stderr = stderrTail(child);
  const events = new EventQueue(() => stderr());
  createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as PeerEvent));
  // 'close', not 'exit': it comes after the last stdout line has been read.
  child.once('close', (code, signal) => events.end(`derpclient exited (code ${code}, signal ${signal})`));
  const command = (fields: Record<string, unknown>) => child.stdin!.write(`${JSON.stringify(fields)}\n`);
  // A test that ends early leaves stdin open; EPIPE then only means the client is already gone.
  child.stdin!.on('error', () => {});

  const ready = await events.next('ready');
  return {
    publicKey: parsePublicKey(ready.publicKey as string),
    serverKey: parsePublicKey(ready.serverKey as string),
    send: (to, packet) => {
      command({ op: 'send', to: formatPublicKey(to), payload: Buffer.from(packet).toString('base64') });
    },
    ping: async () => {
      command({ op: 'ping' });
      return (await events.next('pong')).rttNs as number;
    },
    receive: async () => {
      const received = await events.next('recv');
      return {
        source: parsePublicKey(received.from as string),
        packet: new Uint8Array(Buffer.from(received.payload as string, 'base64')),
      };
    },
    flood: async (to, count, size) => {
      command({ op: 'flood', to: formatPublicKey(to), count, size });
      const flooded = await events.next('flooded', 60_000);
      return { count: flooded.count as number, elapsedNs: flooded.elapsedNs as number };
    },
    stats: async (waitFor = 0, timeoutMs = 0) => {
      command({ op: 'stats', waitFor, timeoutMs });
      const stats = await events.next('stats', timeoutMs + 10_000);
      return { received: stats.received as number, bytesReceived: stats.bytesReceived as number };
    },
    nextEvent: (kind, timeoutMs) => events.next(kind, timeoutMs),
    close: async () => {
      const exited = once(child, 'exit');
      command({ op: 'close' });
      await events.next('closed');
      const [code] = (await exited) as [number | null];
      return code;
    },
    kill: () => stopChild(child),
  };
}

interface Waiter {
  readonly kind: string;
  resolve(event: PeerEvent): void;
  reject(error: Error): void;
}

/** Events in arrival order; `next(kind)` takes the oldest unconsumed one of that kind. */
class EventQueue {
  readonly #unconsumed: PeerEvent[] = [];
  readonly #waiters = new Set<Waiter>();
  readonly #describe: () => string;
  #ended: string | undefined;

  constructor(describe: () => string) {
    this.#describe = describe;
  }

  push(event: PeerEvent): void {
    if (event.event === 'error') {
      const failure = this.#failure(`derpclient reported an error: ${JSON.stringify(event)}`);
      for (const waiter of this.#waiters) waiter.reject(failure);
      this.#waiters.clear();
      return;
    }
    for (const waiter of this.#waiters) {
      if (waiter.kind !== event.event) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(event);
      return;
    }
    this.#unconsumed.push(event);
  }

  end(why: string): void {
    this.#ended = why;
    for (const waiter of this.#waiters) waiter.reject(this.#failure(why));
    this.#waiters.clear();
  }

  next(kind: string, timeoutMs = 10_000): Promise<PeerEvent> {
    const index = this.#unconsumed.findIndex((event) => event.event === kind);
    if (index >= 0) return Promise.resolve(this.#unconsumed.splice(index, 1)[0]!);
    if (this.#ended !== undefined) return Promise.reject(this.#failure(this.#ended));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(this.#failure(`no "${kind}" event from derpclient within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        kind,
        resolve: (event) => {
          clearTimeout(timer);
          resolve(event);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  #failure(what: string): Error {
    const seen = this.#unconsumed.map((event) => JSON.stringify(event).slice(0, 200)).join('\n');
    return new Error(
      `${what}\n--- unconsumed events ---\n${seen}\n--- derpclient stderr ---\n${this.#describe()}`,
    );
  }
}
