// The one test run behind `npm test`: every package's *.test.ts beside its code and every
// cross-process test in test/, in one `node --test` invocation, so that the output ends with one
// summary of the whole run (`# pass N`, `# fail N`) rather than one per workspace.
import { spawnSync } from 'node:child_process';

const patterns = ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'];
const args = [
  '--test',
  '--test-reporter=tap',
  // Two files at a time on the 2-core machines; cross-process tests wait on events, not on time.
  '--test-concurrency=2',
  '--test-timeout=180000',
  ...patterns,
];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(result.status ?? 1);
