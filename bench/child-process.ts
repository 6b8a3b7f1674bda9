import { type ChildProcess, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Stops a benchmark's child process: SIGTERM, so that it shuts down as in production, then
 * SIGKILL if it has not exited after `graceMs`. Resolves once it has exited.
 */
export function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(killer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Runs a benchmark's `main`, stopping every child it started (`stopAll`) when it fails or when the
 * bench is interrupted (SIGINT, SIGTERM), so that no server outlives the bench.
 */
export function runBench(name: string, main: () => Promise<void>, stopAll: () => Promise<void>): void {
  for (const [signal, exitCode] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      void stopAll().finally(() => process.exit(exitCode));
    });
  }
  main().catch(async (error: unknown) => {
    await stopAll();
    process.stderr.write(`${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

const CLOCK_TICKS_PER_SECOND =
  Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** User plus system CPU seconds of every thread of `pid` so far, from /proc/<pid>/stat. */
export function cpuSecondsOf(name: string, pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    throw new Error(`${name} (pid ${pid}) exited during the benchmark`);
  }
  // After the parenthesised command name (which may hold spaces): utime is field 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}
