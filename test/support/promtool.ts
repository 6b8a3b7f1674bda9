import { runTool, type ToolRun } from './run-tool.ts';

/** What promtool said about an input: `ok` is its exit status 0, `problems` its complaints, one a line. */
export interface PromtoolVerdict {
  ok: boolean;
  problems: string[];
  /** Everything promtool printed, stdout then stderr, for assertion messages. */
  output: string;
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

function verdict(run: ToolRun): PromtoolVerdict {
  const problems = run.stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  return { ok: run.exitCode === 0, problems, output: `${run.stdout}${run.stderr}` };
}

function runPromtool(args: string[], stdin = ''): Promise<ToolRun> {
  return runTool(
    'promtool',
    args,
    stdin,
    "run scripts/ensure-test-deps.sh (it installs Debian's prometheus package)",
  );
}
