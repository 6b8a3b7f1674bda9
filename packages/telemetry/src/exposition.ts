import {
  type ExpositionFormat,
  formatSampleValue,
  OPENMETRICS_EOF,
  targetInfo as targetInfoFamily,
} from './exposition-format.ts';
import { histogramOffsets } from './series-layout.ts';
import type { SeriesRegistry } from './series-registry.ts';

/**
 * Writes the catalogs' series as Prometheus text 0.0.4 or OpenMetrics 1.0, from merged values.
 *
 * Every family header and every series' line prefix (name and escaped, sorted labels) is built
 * once, when first written (series-registry.ts); a scrape only formats numbers and concatenates.
 * The text comes out in chunks of about `chunkChars` characters, so that the admin server can
 * stream a 100,000-series response instead of building it whole.
 *
 * Histogram series appear with their first observation (as the SDK's histograms did); every
 * counter, up-down counter and gauge series is written from its creation on, zeros included.
 */

export interface ExpositionInput {
  readonly registry: SeriesRegistry;
  /** From `registry.merge()`. */
  readonly values: Float64Array;
  readonly format: ExpositionFormat;
  /** Label pairs of `target_info` (the resource), already escaped; none when empty. */
  readonly targetInfo?: string | undefined;
  /** Families from elsewhere (the SDK's own instruments), already in `format`, written last. */
  readonly extraFamilies?: string | undefined;
  readonly chunkChars?: number;
}

export interface ExpositionCounts {
  /** Sample lines written (each histogram bucket, sum and count is one). */
  samples: number;
}

const DEFAULT_CHUNK_CHARS = 64 * 1024;

/** Yields the exposition in chunks; `counts.samples` is complete once the generator is done. */
export function* expositionChunks(input: ExpositionInput, counts: ExpositionCounts): Generator<string> {
  const { registry, values, format } = input;
  const chunkChars = input.chunkChars ?? DEFAULT_CHUNK_CHARS;
  let chunk = input.targetInfo === undefined ? '' : targetInfoFamily(input.targetInfo, format);
  let samples = input.targetInfo === undefined ? 0 : 1;
  for (const registered of registry.instruments) {
    const { kind, buckets } = registered.instrument;
    const countOffset = kind === 'histogram' ? histogramOffsets(buckets ?? []).count : -1;
    let headerWritten = false;
    for (const series of registered.series) {
      const offset = series.offset;
      if (countOffset >= 0 && values[offset + countOffset] === 0) continue;
      if (!headerWritten) {
        chunk += registered.header(format);
        headerWritten = true;
      }
      const prefixes = registered.prefixes(series, format);
      if (countOffset < 0) {
        chunk += `${prefixes[0]}${formatSampleValue(values[offset] as number)}\n`;
        samples += 1;
      } else {
        chunk += histogramLines(prefixes, values, offset, countOffset);
        samples += prefixes.length;
      }
      if (chunk.length >= chunkChars) {
        yield chunk;
        chunk = '';
      }
    }
  }
  if (input.extraFamilies !== undefined) chunk += input.extraFamilies;
  if (format === 'openmetrics') chunk += OPENMETRICS_EOF;
  counts.samples = samples;
  yield chunk;
}

/**
 * Buckets (cumulative), then sum and count. The slots hold B + 1 bucket counts, sum, count (at
 * `countOffset` = B + 2); `prefixes` has B finite buckets, `+Inf`, `_sum` and `_count`.
 */
function histogramLines(
  prefixes: readonly string[],
  values: Float64Array,
  offset: number,
  countOffset: number,
): string {
  let text = '';
  let cumulative = 0;
  const finite = countOffset - 2;
  for (let i = 0; i < finite; i++) {
    cumulative += values[offset + i] as number;
    text += `${prefixes[i]}${cumulative}\n`;
  }
  const count = values[offset + countOffset] as number;
  text += `${prefixes[finite]}${count}\n`;
  text += `${prefixes[finite + 1]}${formatSampleValue(values[offset + finite + 1] as number)}\n`;
  text += `${prefixes[finite + 2]}${count}\n`;
  return text;
}

/** The whole exposition as one string (tests, `Telemetry.scrape()`). */
export function expositionText(input: ExpositionInput, counts: ExpositionCounts = { samples: 0 }): string {
  let text = '';
  for (const chunk of expositionChunks(input, counts)) text += chunk;
  return text;
}
