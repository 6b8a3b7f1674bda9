/**
 * A small timing harness for side-by-side microbenchmarks on a noisy machine.
 *
 * Each case owns its loop (`run(iterations)`), so the measured code is one optimised function and
 * the harness adds one call per sample, not per operation. Every case is warmed up first, then the
 * samples are taken round-robin, one per case per round with the starting case rotated, so that
 * drift (frequency scaling, a neighbour's build, GC of another case's garbage) lands on all cases
 * alike. The median of the samples is the figure to read; the minimum shows the noise floor.
 */

/** One measured operation. */
export interface BenchCase {
  readonly name: string;
  /**
   * Performs the operation `iterations` times and returns a number derived from the work done;
   * the harness folds it into a checksum so that the optimiser cannot drop the loop.
   */
  run(iterations: number): number | Promise<number>;
}

export interface HarnessOptions {
  /** Timed samples per case. Default 7; odd, so that the median is a measured sample. */
  readonly runs?: number;
  /** Wall time each sample aims at, in milliseconds. Default 75. */
  readonly sampleMs?: number;
  /** Time each case runs before it is measured, in milliseconds. Default 200. */
  readonly warmupMs?: number;
}

export interface CaseResult {
  readonly name: string;
  /** Operations per sample. */
  readonly iterations: number;
  readonly medianNs: number;
  readonly minNs: number;
  /** Nanoseconds per operation of every sample, in the order taken. */
  readonly samplesNs: readonly number[];
}

export interface BenchReport {
  readonly results: readonly CaseResult[];
  /** Fold of every value the cases returned; print it so that the work stays observable. */
  readonly checksum: number;
}

const NS_PER_MS = 1_000_000;

/** Reads a positive integer from an environment variable, or `fallback` when it is unset. */
export function positiveIntegerFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name}="${raw}" is not allowed: set it to a positive integer, e.g. ${name}=7`);
  }
  return value;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  if (sorted.length % 2 === 1) return sorted[middle] as number;
  return ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

async function timeSample(benchCase: BenchCase, iterations: number): Promise<{ ns: number; value: number }> {
  const start = process.hrtime.bigint();
  const returned = benchCase.run(iterations);
  // Awaiting only real promises keeps a microtask turn out of the timing of synchronous cases.
  const value = returned instanceof Promise ? await returned : returned;
  const ns = Number(process.hrtime.bigint() - start);
  return { ns, value };
}

/**
 * Warms `benchCase` up for about `warmupMs`, then returns the iteration count whose sample takes
 * about `sampleNs` at the fastest rate seen: noise and unoptimised code only ever slow a sample
 * down, so the fastest one is the best estimate of the steady state.
 */
async function warmUpAndCalibrate(
  benchCase: BenchCase,
  sampleNs: number,
  warmupMs: number,
  fold: (value: number) => void,
): Promise<number> {
  let iterations = 1;
  let sample = await timeSample(benchCase, iterations);
  fold(sample.value);
  while (sample.ns < sampleNs / 4) {
    iterations *= sample.ns < sampleNs / 100 ? 10 : 2;
    sample = await timeSample(benchCase, iterations);
    fold(sample.value);
  }
  let fastestNsPerOp = sample.ns / iterations;
  const warmupEnd = process.hrtime.bigint() + BigInt(warmupMs * NS_PER_MS);
  for (;;) {
    iterations = Math.max(1, Math.round(sampleNs / Math.max(fastestNsPerOp, 1e-3)));
    if (process.hrtime.bigint() >= warmupEnd) return iterations;
    sample = await timeSample(benchCase, iterations);
    fold(sample.value);
    fastestNsPerOp = Math.min(fastestNsPerOp, sample.ns / iterations);
  }
}

/** Warms up and calibrates every case, then samples them round-robin. */
export async function runCases(
  cases: readonly BenchCase[],
  options: HarnessOptions = {},
): Promise<BenchReport> {
  const runs = options.runs ?? 7;
  const sampleNs = (options.sampleMs ?? 75) * NS_PER_MS;
  const warmupMs = options.warmupMs ?? 200;
  if (!Number.isInteger(runs) || runs < 1) {
    throw new RangeError(`runs=${runs} is not allowed: it must be a positive integer`);
  }
  let checksum = 0;
  const fold = (value: number): void => {
    checksum = (checksum + value) % Number.MAX_SAFE_INTEGER;
  };

  const iterations: number[] = [];
  for (const benchCase of cases)
    iterations.push(await warmUpAndCalibrate(benchCase, sampleNs, warmupMs, fold));

  const samples: number[][] = cases.map(() => []);
  for (let round = 0; round < runs; round++) {
    for (let offset = 0; offset < cases.length; offset++) {
      const index = (round + offset) % cases.length;
      const count = iterations[index] as number;
      const sample = await timeSample(cases[index] as BenchCase, count);
      fold(sample.value);
      (samples[index] as number[]).push(sample.ns / count);
    }
  }

  const results = cases.map((benchCase, index) => {
    const samplesNs = samples[index] as number[];
    return {
      name: benchCase.name,
      iterations: iterations[index] as number,
      medianNs: median(samplesNs),
      minNs: Math.min(...samplesNs),
      samplesNs,
    };
  });
  return { results, checksum };
}

/** Renders rows as a Markdown table; `align` gives `l` or `r` per column. */
export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align: string,
): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, 3, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const pad = (cell: string, column: number): string => {
    const width = widths[column] as number;
    return align[column] === 'r' ? cell.padStart(width) : cell.padEnd(width);
  };
  const line = (cells: readonly string[]): string => `| ${cells.map(pad).join(' | ')} |`;
  const rule = `|${widths
    .map((width, column) =>
      align[column] === 'r' ? `${'-'.repeat(width + 1)}:` : `:${'-'.repeat(width + 1)}`,
    )
    .join('|')}|`;
  return [line(header), rule, ...rows.map((row) => line(row))].join('\n');
}
