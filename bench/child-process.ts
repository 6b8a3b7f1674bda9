import type { ChildProcess } from 'node:child_process';

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
