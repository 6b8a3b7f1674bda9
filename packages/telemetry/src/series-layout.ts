import type { InstrumentKind } from './catalog.ts';

/**
 * How a series of each instrument kind lays out its slots, shared by the cells that write them
 * (recorder.ts) and the registry that reads them (series-registry.ts).
 *
 * A counter, up-down counter or gauge is one slot. A histogram with B boundaries is B + 5 slots:
 * B + 1 bucket counts (the last one above every boundary), then sum, count, min and max.
 */

export function seriesWidth(kind: InstrumentKind, boundaries: ArrayLike<number> | undefined): number {
  return kind === 'histogram' ? (boundaries?.length ?? 0) + 5 : 1;
}

/** Offsets of a histogram's fields from its first slot. */
export interface HistogramOffsets {
  readonly sum: number;
  readonly count: number;
  readonly min: number;
  readonly max: number;
}

export function histogramOffsets(boundaries: ArrayLike<number>): HistogramOffsets {
  const buckets = boundaries.length + 1;
  return { sum: buckets, count: buckets + 1, min: buckets + 2, max: buckets + 3 };
}
