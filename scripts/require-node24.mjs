// Runs before every root script. It is plain JavaScript on purpose: on the Node 20 that these
// machines ship, a .ts guard could not even start, and `node --test` would find no .ts tests,
// run nothing and exit 0. Failing here, loudly, is the point.
import { pathToFileURL } from 'node:url';

export const MINIMUM_NODE_MAJOR = 24;

/**
 * Why `version` (as `process.version`) cannot run this repository, or undefined when it can.
 * @param {string} version
 * @param {string} execPath
 * @returns {string | undefined}
 */
export function nodeVersionProblem(version, execPath) {
  const major = Number(version.replace(/^v/, '').split('.')[0]);
  if (major >= MINIMUM_NODE_MAJOR) return undefined;
  return (
    `switchyard: this repository needs Node ${MINIMUM_NODE_MAJOR} (found ${version} at ${execPath}).\n` +
    'Run the scripts through npm (`npm test`, `npm start`) after `npm ci`: the root devDependency\n' +
    '`node@24` puts a Node 24 binary first on the PATH of every npm script.'
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const problem = nodeVersionProblem(process.version, process.execPath);
  if (problem !== undefined) {
    console.error(problem);
    process.exit(1);
  }
}
