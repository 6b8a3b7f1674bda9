import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A server binary (Prometheus, the Collector) started by a test, tied to the test process's life. */
export interface ServerProcess {
  readonly child: ChildProcess;
  /** Resolves once the process has exited (or failed to spawn). */
  readonly exited: Promise<void>;
  hasExited(): boolean;
  /** The last few KiB of its stderr, for error messages. */
  stderrTail(): string;
  /** Sends SIGTERM and resolves once it has exited; SIGKILL after `stopGraceMs` (default 10 s). */
  stop(): Promise<void>;
}

export interface SpawnServerOptions {
  /** Removed (synchronously) if the test process exits while the server still runs. */
  readonly scratchDir?: string;
  readonly stopGraceMs?: number;
}

const stderrTailBytes = 8_192;
const readyPollIntervalMs = 100;

/** Servers not yet stopped, killed synchronously if the test process exits first. */
const unstopped = new Map<ChildProcess, string | undefined>();
let exitHookInstalled = false;

/**
 * Spawns `command` with stdout ignored and stderr kept (its tail), unreferenced so that a test that
 * forgets `stop()` does not keep its file's event loop alive: the exit hook kills it instead.
 */
export function spawnServer(
  command: string,
  args: readonly string[],
  options: SpawnServerOptions = {},
): ServerProcess {
  const child = spawnTiedToThisProcess(command, args);
  let tail = '';
  const appendStderr = (chunk: string): void => {
    tail = (tail + chunk).slice(-stderrTailBytes);
  };
  child.stderr?.setEncoding('utf8').on('data', appendStderr);
  let done = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (error) => {
      appendStderr(`spawn failed: ${error.message}`);
      resolve();
    });
  }).then(() => {
    done = true;
    unstopped.delete(child);
  });
  track(child, options.scratchDir);
  const stopGraceMs = options.stopGraceMs ?? 10_000;
  let stopped: Promise<void> | undefined;
  return {
    child,
    exited,
    hasExited: () => done,
    stderrTail: () => tail,
    stop: () => {
      stopped ??= (async () => {
        if (done) return;
        // Referenced again so that the event loop stays up until the exit has been seen.
        child.ref();
        child.kill('SIGTERM');
        const escalation = setTimeout(() => child.kill('SIGKILL'), stopGraceMs);
        await exited;
        clearTimeout(escalation);
      })();
      return stopped;
    },
  };
}

/**
 * Polls `probe` until it resolves true. Rejects, after stopping the server, when the server exits
 * first or `timeoutMs` passes; the error carries the server's stderr tail.
 */
export async function waitUntilReady(
  server: ServerProcess,
  name: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (server.hasExited()) {
      const { exitCode, signalCode } = server.child;
      throw serverError(
        server,
        name,
        `${name} exited before becoming ready (exit code ${exitCode}, signal ${signalCode})`,
      );
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw serverError(server, name, `${name} was not ready within ${timeoutMs} ms`);
    }
    await sleep(readyPollIntervalMs);
  }
}

/** An Error whose message ends with the server's stderr tail. */
export function serverError(server: ServerProcess, name: string, what: string): Error {
  return new Error(`${what}\n--- ${name} stderr (tail) ---\n${server.stderrTail()}`);
}

/** True when `url` answers 2xx within 5 s. */
export async function answersOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

export function findOnPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

// PR_SET_PDEATHSIG (via util-linux setpriv) has the kernel send SIGTERM to the server when this
// process dies, even by SIGKILL or a signal Node does not turn into an 'exit' event.
function spawnTiedToThisProcess(command: string, args: readonly string[]): ChildProcess {
  const setpriv = findOnPath('setpriv');
  const [file, argv] =
    setpriv === undefined ? [command, args] : [setpriv, ['--pdeathsig', 'TERM', command, ...args]];
  const child = spawn(file, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.unref();
  (child.stderr as Socket | null)?.unref();
  return child;
}

function track(child: ChildProcess, scratchDir: string | undefined): void {
  unstopped.set(child, scratchDir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [leftover, dir] of unstopped) {
      leftover.kill('SIGKILL');
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    }
  });
}
