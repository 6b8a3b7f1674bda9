import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** One JSON log line of a worker. */
export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  /** Every log line so far, parsed. */
  readonly logs: LogLine[];
  /** Resolves with the first log line (past or future) that satisfies `predicate`. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface RunningSampleWorker extends WorkerProcess {
  readonly adminUrl: string;
  readonly echoPort: number;
}

const sampleMain = fileURLToPath(new URL('../../packages/sample-worker/src/main.ts', import.meta.url));
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts a worker's main.ts as a real child process on this Node, with JSON logs on stdout. The
 * environment is the given one only (plus PATH), so that no OTEL_* variable of the caller leaks in.
 */
export function spawnWorker(
  mainFile: string,
  env: NodeJS.ProcessEnv,
  args: readonly string[] = [],
): WorkerProcess {
  const child = spawn(process.execPath, [mainFile, ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const logs: LogLine[] = [];
  const waiters: Array<{ predicate: (line: LogLine) => boolean; resolve: (line: LogLine) => void }> = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { level: 'raw', msg: text };
    }
    logs.push(line);
    for (const waiter of [...waiters]) {
      if (waiter.predicate(line)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const exited = once(child, 'exit').then(([code, signal]) => {
    running.delete(child);
    return { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });
  const describe = () =>
    `worker logs:\n${logs.map((line) => JSON.stringify(line)).join('\n')}\nstderr:\n${stderr.slice(-2000)}`;

  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> => {
    const seen = logs.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = { predicate, resolve };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no matching log line within ${timeoutMs} ms\n${describe()}`));
      }, timeoutMs);
      waiter.resolve = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
      waiters.push(waiter);
      void exited.then(({ code, signal }) => {
        if (!waiters.includes(waiter)) return;
        waiters.splice(waiters.indexOf(waiter), 1);
        clearTimeout(timer);
        reject(
          new Error(`worker exited (code ${code}, signal ${signal}) before the log line came\n${describe()}`),
        );
      });
    });
  };

  return {
    child,
    logs,
    waitForLog,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * Starts the sample worker with its admin server and echo listener on free ports (port 0), and
 * resolves once it logs that it serves, with the addresses it bound.
 */
export async function startSampleWorker(env: NodeJS.ProcessEnv = {}): Promise<RunningSampleWorker> {
  const worker = spawnWorker(sampleMain, {
    SWITCHYARD_SAMPLE_TELEMETRY__ADMIN__PORT: '0',
    SWITCHYARD_SAMPLE_ECHO__LISTEN: '127.0.0.1:0',
    ...env,
  });
  const admin = await worker.waitForLog((line) => line.msg === 'admin server listening');
  const echo = await worker.waitForLog((line) => line.msg === 'echo listener ready');
  await worker.waitForLog((line) => line.msg === 'sample worker serving');
  return { ...worker, adminUrl: `http://127.0.0.1:${admin.port}`, echoPort: echo.port as number };
}
