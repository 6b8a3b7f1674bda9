/**
 * What the admin server (telemetry thread) needs to know about the data thread, in shared memory:
 * readiness, which the worker sets, and a heartbeat, which a timer on the data thread writes once a
 * second. /readyz answers from the first, /healthz from the second: the admin server stays
 * responsive while the data thread is stuck, so liveness must come from the data thread itself.
 */

export type Readiness = 'starting' | 'ready' | 'stopping';

const READINESS: readonly Readiness[] = ['starting', 'ready', 'stopping'];
const HEARTBEAT_INTERVAL_MS = 1_000;
/** /healthz fails once the data thread has not run a timer for this long. */
export const LIVENESS_LIMIT_MS = 5_000;

export class WorkerState {
  readonly buffer: SharedArrayBuffer;
  readonly #readiness: Int32Array;
  readonly #heartbeat: BigInt64Array;

  constructor(buffer = new SharedArrayBuffer(16)) {
    this.buffer = buffer;
    this.#readiness = new Int32Array(buffer, 0, 1);
    this.#heartbeat = new BigInt64Array(buffer, 8, 1);
  }

  /** `true` once the worker serves traffic; `false` again from the start of shutdown. */
  setReady(ready: boolean): void {
    Atomics.compareExchange(this.#readiness, 0, ready ? 0 : 1, ready ? 1 : 0);
  }

  /** Readiness turns 503 for good: the first step of graceful shutdown. */
  markStopping(): void {
    Atomics.store(this.#readiness, 0, 2);
  }

  get readiness(): Readiness {
    return READINESS[Atomics.load(this.#readiness, 0)] ?? 'starting';
  }

  /** Starts the data thread's heartbeat; the timer does not keep the process alive. */
  startHeartbeat(): { stop(): void } {
    const beat = () => Atomics.store(this.#heartbeat, 0, BigInt(Date.now()));
    beat();
    const timer = setInterval(beat, HEARTBEAT_INTERVAL_MS);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }

  /** Milliseconds since the data thread's last heartbeat (0 before the first). */
  silentForMs(now = Date.now()): number {
    const last = Number(Atomics.load(this.#heartbeat, 0));
    return last === 0 ? 0 : Math.max(0, now - last);
  }
}
