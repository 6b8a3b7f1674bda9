import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const scriptsDir = fileURLToPath(new URL('../../scripts/', import.meta.url));

/**
 * The path of a binary that a scripts/build-*.sh script builds into .cache/, from the script's
 * `--check` mode: it prints the path when the cached binary matches its build definition, and fails
 * naming the command to run otherwise (`npm test` runs it through scripts/ensure-test-deps.sh).
 */
export function cachedBinary(buildScript: 'build-collector.sh' | 'build-prometheus3.sh'): string {
  const check = spawnSync('bash', [`${scriptsDir}${buildScript}`, '--check'], { encoding: 'utf8' });
  if (check.status !== 0) {
    throw new Error(`${check.stderr.trim() || `scripts/${buildScript} --check failed`}`);
  }
  return check.stdout.trim();
}
