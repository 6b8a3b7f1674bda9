import type { HealthChangeCause, TimerScheduler } from './upstream-health.ts';

/** A clock and timer queue that move only when the test says so. */
export class FakeClock implements TimerScheduler {
  nowMs = 0;
  readonly #timers = new Map<number, { atMs: number; delayMs: number; callback: () => void }>();
  #nextId = 1;

  readonly now = (): number => this.nowMs;

  schedule(callback: () => void, delayMs: number): number {
    const id = this.#nextId++;
    this.#timers.set(id, { atMs: this.nowMs + delayMs, delayMs, callback });
    return id;
  }

  cancel(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Pending timers as id -> delay they were scheduled with. */
  get pending(): Map<number, number> {
    return new Map([...this.#timers].map(([id, timer]) => [id, timer.delayMs]));
  }

  advance(ms: number): void {
    const endMs = this.nowMs + ms;
    for (;;) {
      const due = [...this.#timers]
        .filter(([, t]) => t.atMs <= endMs)
        .sort(([, a], [, b]) => a.atMs - b.atMs)[0];
      if (due === undefined) break;
      const [id, timer] = due;
      this.#timers.delete(id);
      this.nowMs = Math.max(this.nowMs, timer.atMs);
      timer.callback();
    }
    this.nowMs = endMs;
  }
}

/**
 * Fails after `ms` instead of hanging. Its timer is ref'd on purpose: health timers are unref'd,
 * and with no server open the event loop would otherwise end while the test still waits.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let deadline: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    deadline = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(deadline);
  }
}

/** Health changes as they happen, and a way to wait for the next one. */
export class ChangeLog {
  readonly changes: { healthy: boolean; cause: HealthChangeCause }[] = [];
  #waiter: ((healthy: boolean) => void) | undefined;

  readonly onChange = (healthy: boolean, cause: HealthChangeCause): void => {
    this.changes.push({ healthy, cause });
    this.#waiter?.(healthy);
    this.#waiter = undefined;
  };

  next(): Promise<boolean> {
    return within(new Promise((resolve) => (this.#waiter = resolve)), 5000, 'health change');
  }
}
