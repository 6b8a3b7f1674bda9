import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { standaloneMetrics } from '@switchyard/telemetry';
import { type RelayMetrics, relayCatalog } from './metrics.ts';

/**
 * Fresh catalog handles for one test, attached to no telemetry pipeline: the cells count and tests
 * read them (`.value`); nothing collects or exports them. The only place tests get handles from.
 */
export function relayMetricsForTests(): RelayMetrics {
  return standaloneMetrics(relayCatalog).metrics;
}

/**
 * Waits until `condition` holds, checking every 5 ms, and fails the test naming `what` after
 * `timeoutMs`. For state inside the relay that no event announces (cell values, link states).
 */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
