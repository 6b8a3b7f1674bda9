import { execFileSync, spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { stopChild } from './child-process.ts';

/**
 * The contenders of the proxy benchmark and how to start each one: as a process of its own,
 * listening on a free 127.0.0.1 port and forwarding to the backend's port.
 */

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 3_000;
const OUTPUT_TAIL_BYTES = 4_000;

const BENCH_DIR = import.meta.dirname;
const REPO_ROOT = path.resolve(BENCH_DIR, '..');
const SWITCHYARD_MAIN = path.join(REPO_ROOT, 'packages/proxy/src/main.ts');

/** A started contender. */
export interface RunningContender {
  readonly name: string;
  /** Where the load generator connects. */
  readonly port: number;
  /** The proxy's process, whose CPU time the bench reads; undefined when no proxy is in the path. */
  readonly pid: number | undefined;
  /** The end of what the process wrote to stdout and stderr, to explain a failure. */
  outputTail(): string;
  stop(): Promise<void>;
}

export interface Contender {
  readonly name: string;
  /** Why the contender cannot run on this checkout; undefined when it can. */
  skipReason(): string | undefined;
  start(upstreamPort: number, workDir: string): Promise<RunningContender>;
}

export interface SwitchyardLaunch {
  /** The proxy's config file contents, written as JSON (which YAML readers accept too). */
  readonly config: unknown;
  /** Environment added to the proxy's process. */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * Our proxy's config for one listener forwarding to one upstream. The config format is not final:
 * this is the one place to change when it moves.
 */
export function switchyardConfig(options: {
  listen: number;
  upstream: number;
  metrics: boolean;
}): SwitchyardLaunch {
  return {
    config: {
      listeners: [{ name: 'bench', listen: `${HOST}:${options.listen}`, pool: 'bench' }],
      pools: [
        {
          name: 'bench',
          policy: 'round_robin',
          upstreams: [{ name: 'backend', address: `${HOST}:${options.upstream}` }],
        },
      ],
      telemetry: { admin: { port: 0 } },
    },
    env: { OTEL_SDK_DISABLED: options.metrics ? 'false' : 'true' },
  };
}

/** HAProxy as a plain layer-4 proxy: one thread, no logging, generous timeouts, defaults otherwise. */
export function haproxyConfig(options: { listen: number; upstream: number }): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 8000',
    'defaults',
    '  mode tcp',
    '  timeout connect 10s',
    '  timeout client 1m',
    '  timeout server 1m',
    'frontend bench',
    `  bind ${HOST}:${options.listen}`,
    '  default_backend upstream',
    'backend upstream',
    `  server backend ${HOST}:${options.upstream}`,
    '',
  ].join('\n');
}

/** Debian installs haproxy in /usr/sbin, which is not on a non-root user's PATH. */
export function haproxyBinary(): string | undefined {
  const directories = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const directory of directories) {
    if (directory === '') continue;
    const candidate = path.join(directory, 'haproxy');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

export function haproxyVersion(): string {
  const binary = haproxyBinary();
  if (binary === undefined) return 'haproxy not installed';
  const firstLine = execFileSync(binary, ['-v'], { encoding: 'utf8' }).split('\n')[0] ?? '';
  return firstLine.replace(/ - https?:\/\/\S+/, '').trim();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: HOST, port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tailOf(file: string): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-OUTPUT_TAIL_BYTES).trim();
  } catch {
    return '';
  }
}

/**
 * Spawns `command` with its output going to a log file in `workDir` (so that a chatty process can
 * neither block on a full pipe nor cost the bench CPU), then retries connecting to `port` until it
 * accepts, the process exits, or READY_TIMEOUT_MS passes.
 */
async function startProcess(
  name: string,
  port: number,
  command: string,
  args: readonly string[],
  workDir: string,
  env: Readonly<Record<string, string>> = {},
): Promise<RunningContender> {
  const logFile = path.join(workDir, `${name}.log`);
  const logFd = openSync(logFile, 'w');
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  let spawnError: Error | undefined;
  child.once('error', (error) => {
    spawnError = error;
  });
  const running: RunningContender = {
    name,
    port,
    pid: child.pid,
    outputTail: () => tailOf(logFile),
    stop: () => stopChild(child, STOP_TIMEOUT_MS),
  };
  const commandLine = [command, ...args].join(' ');
  const deadline = performance.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (spawnError !== undefined) {
      throw new Error(`contender ${name} could not start (${commandLine}): ${spawnError.message}`);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      const status = child.exitCode ?? child.signalCode;
      throw new Error(
        `contender ${name} exited (${status}) before accepting connections on ${HOST}:${port}\n` +
          `  command: ${commandLine}\n  output:\n${running.outputTail()}`,
      );
    }
    if (await acceptsConnections(port)) return running;
    if (performance.now() > deadline) {
      await running.stop();
      throw new Error(
        `contender ${name} did not accept connections on ${HOST}:${port} within ${READY_TIMEOUT_MS} ms\n` +
          `  command: ${commandLine}\n  output:\n${running.outputTail()}`,
      );
    }
    await delay(50);
  }
}

const direct: Contender = {
  name: 'direct',
  skipReason: () => undefined,
  start: async (upstreamPort) => ({
    name: 'direct',
    port: upstreamPort,
    pid: undefined,
    outputTail: () => '',
    stop: async () => {},
  }),
};

const haproxy: Contender = {
  name: 'haproxy',
  skipReason: () => undefined,
  start: async (upstreamPort, workDir) => {
    const binary = haproxyBinary();
    if (binary === undefined) {
      throw new Error('contender haproxy: haproxy is not installed; run `bash scripts/ensure-bench-deps.sh`');
    }
    const port = await freePort();
    const configFile = path.join(workDir, 'haproxy.cfg');
    writeFileSync(configFile, haproxyConfig({ listen: port, upstream: upstreamPort }));
    // -db: stay in the foreground as a single process, so that its pid is the one doing the work.
    return startProcess('haproxy', port, binary, ['-db', '-f', configFile], workDir);
  },
};

/** A Node proxy script in bench/ taking `--listen PORT --upstream PORT`. */
function nodeScript(name: string, file: string): Contender {
  return {
    name,
    skipReason: () => undefined,
    start: async (upstreamPort, workDir) => {
      const port = await freePort();
      const args = [path.join(BENCH_DIR, file), '--listen', `${port}`, '--upstream', `${upstreamPort}`];
      return startProcess(name, port, process.execPath, args, workDir);
    },
  };
}

/** A bare `socket.pipe()` proxy: the reference point the proxy issue names. */
const nodePipe = nodeScript('node-pipe', 'node-pipe.ts');
/** Our proxy's data path alone: the floor under `switchyard`. */
const dataPathOnly = nodeScript('data-path-only', 'data-path-only.ts');

function switchyard(name: string, metrics: boolean, main = SWITCHYARD_MAIN): Contender {
  return {
    name,
    skipReason: () =>
      existsSync(main)
        ? undefined
        : `${path.relative(REPO_ROOT, main)} does not exist (the proxy has not landed, or BENCH_PROXY_BASELINE is wrong)`,
    start: async (upstreamPort, workDir) => {
      const port = await freePort();
      const launch = switchyardConfig({ listen: port, upstream: upstreamPort, metrics });
      const configFile = path.join(workDir, `${name}.json`);
      writeFileSync(configFile, `${JSON.stringify(launch.config, null, 2)}\n`);
      const args = [main, '--config', configFile];
      return startProcess(name, port, process.execPath, args, workDir, launch.env);
    },
  };
}

/**
 * Another copy of our proxy to compare against in the same run, when BENCH_PROXY_BASELINE names a
 * directory (relative to the repository root) holding `packages/proxy/src` of an earlier revision,
 * e.g. `git archive HEAD~1 packages/proxy | tar -x -C .cache/proxy-baseline`. It must sit inside
 * the repository so that its imports resolve to this checkout's node_modules.
 */
function baseline(): Contender[] {
  const directory = process.env.BENCH_PROXY_BASELINE;
  if (directory === undefined || directory === '') return [];
  const main = path.resolve(REPO_ROOT, directory, 'packages/proxy/src/main.ts');
  return [switchyard('switchyard-baseline', true, main)];
}

/** Every contender, in the order the tables list them. */
export const CONTENDERS: readonly Contender[] = [
  direct,
  haproxy,
  nodePipe,
  dataPathOnly,
  switchyard('switchyard', true),
  switchyard('switchyard-no-metrics', false),
  ...baseline(),
];
