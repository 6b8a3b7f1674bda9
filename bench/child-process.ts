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
