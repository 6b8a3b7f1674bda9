import { spawn } from 'node:child_process';

/** What promtool said about an input: `ok` is its exit status 0, `problems` its complaints, one a line. */
export interface PromtoolVerdict {
  ok: boolean;
  problems: string[];
  /** Everything promtool printed, stdout then stderr, for assertion messages. */
  output: string;
}

interface PromtoolRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Lints a Prometheus text exposition with `promtool check metrics` (read from stdin). Parse errors
 * and lint findings (a counter without `_total`, a metric without HELP, ...) both make `ok` false.
 */
export async function checkMetrics(exposition: string): Promise<PromtoolVerdict> {
  return verdict(await runPromtool(['check', 'metrics'], exposition));
}

/** Validates a rule file (recording and alerting rules) with every lint promtool has, made fatal. */
export async function checkRules(ruleFile: string): Promise<PromtoolVerdict> {
  return verdict(await runPromtool(['check', 'rules', '--lint=all', '--lint-fatal', ruleFile]));
}

/** Runs the unit tests of a `promtool test rules` test file. */
export async function testRules(testFile: string): Promise<PromtoolVerdict> {
  return verdict(await runPromtool(['test', 'rules', testFile]));
}

function verdict(run: PromtoolRun): PromtoolVerdict {
  const problems = run.stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  return { ok: run.exitCode === 0, problems, output: `${run.stdout}${run.stderr}` };
}

function runPromtool(args: string[], stdin = ''): Promise<PromtoolRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') {
        reject(
          new Error(
            "promtool is not on PATH: run scripts/ensure-test-deps.sh (it installs Debian's prometheus package)",
          ),
        );
        return;
      }
      reject(error);
    });
    child.on('close', (exitCode, signal) => {
      if (exitCode === null) {
        reject(new Error(`promtool ${args.join(' ')} was killed by ${signal}; stderr: ${stderr}`));
        return;
      }
      resolve({ exitCode, stdout, stderr });
    });
    // promtool may exit before reading all of stdin (e.g. on the first parse error); that EPIPE is
    // not a failure of ours, its verdict arrives through the exit status.
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}
