import { connect, type Socket } from 'node:net';
import { dialFailureReason } from './dial.ts';
import {
  type ActiveHealthCheckSettings,
  HealthSettingsError,
  requireInteger,
  type TimerScheduler,
  UpstreamHealth,
  unrefTimers,
  validateThresholds,
} from './upstream-health.ts';

/** Why a check failed: a closed set, safe as a metric label or log field. */
export const HEALTH_CHECK_FAILURES = [
  'timeout',
  'refused',
  'reset',
  'unreachable',
  'unexpected_reply',
  'other',
] as const;
export type HealthCheckFailure = (typeof HEALTH_CHECK_FAILURES)[number];

function validateActive(settings: ActiveHealthCheckSettings): ActiveHealthCheckSettings {
  requireInteger('intervalMs', settings.intervalMs, 1);
  requireInteger('timeoutMs', settings.timeoutMs, 1);
  if (settings.timeoutMs > settings.intervalMs) {
    throw new HealthSettingsError(
      'timeoutMs',
      settings.timeoutMs,
      `expected at most intervalMs (${settings.intervalMs}) so that checks of one upstream never overlap`,
    );
  }
  validateThresholds(settings);
  for (const field of ['send', 'expect'] as const) {
    const bytes = settings[field];
    if (bytes !== undefined && (!Buffer.isBuffer(bytes) || bytes.length === 0)) {
      throw new HealthSettingsError(field, bytes, 'expected a non-empty Buffer, or leave it out');
    }
  }
  return Object.freeze({
    ...settings,
    send: settings.send && Buffer.from(settings.send),
    expect: settings.expect && Buffer.from(settings.expect),
  });
}

/** Maps a socket error to its `health_checks_total{result}` label; unknown codes are `other`. */
export function classifyCheckFailure(error: unknown): HealthCheckFailure {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? dialFailureReason(code) : 'other';
}

/** `undefined` when the upstream passed; `aborted` results are never reported. */
type ProbeResult = HealthCheckFailure | 'aborted' | undefined;

/** One TCP check. Resolves once the probe socket is closed, on every path. */
function probe(
  host: string,
  port: number,
  settings: ActiveHealthCheckSettings,
  signal: AbortSignal,
  timers: TimerScheduler,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const { send, expect } = settings;
    const socket: Socket = connect({ host, port });
    let settled = false;
    let bytesMatched = 0;
    const settle = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      timers.cancel(deadline);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      if (socket.closed) resolve(result);
      else socket.once('close', () => resolve(result));
    };
    const onAbort = (): void => settle('aborted');
    const deadline = timers.schedule(() => settle('timeout'), settings.timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (error) => settle(classifyCheckFailure(error)));
    socket.on('connect', () => {
      if (send !== undefined) {
        socket.write(send, (error) => {
          if (error) settle(classifyCheckFailure(error));
          else if (expect === undefined) settle(undefined);
        });
      } else if (expect === undefined) {
        settle(undefined);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      if (expect === undefined) return;
      const length = Math.min(chunk.length, expect.length - bytesMatched);
      if (!chunk.subarray(0, length).equals(expect.subarray(bytesMatched, bytesMatched + length))) {
        settle('unexpected_reply');
        return;
      }
      bytesMatched += length;
      if (bytesMatched === expect.length) settle(undefined);
    });
    // The peer closed before the whole expected prefix arrived.
    socket.on('end', () => settle(expect === undefined ? undefined : 'unexpected_reply'));
  });
}

export interface HealthCheckTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly health: UpstreamHealth;
}

export interface ActiveHealthCheckerOptions {
  /** Thresholds are applied by each target's UpstreamHealth; build it from the same settings. */
  readonly settings: ActiveHealthCheckSettings;
  readonly targets: readonly HealthCheckTarget[];
  /** Called after each result reached `health.recordCheck`; feeds `health_checks_total{result}`. */
  readonly onResult?: (name: string, ok: boolean, failure?: HealthCheckFailure) => void;
  /**
   * First checks start at a random delay below this, and each later check `intervalMs` after the
   * previous one started, so every target keeps its own phase. Default `intervalMs`: the checks of
   * n targets start at about n / intervalMs a millisecond, as HAProxy spreads a backend's checks
   * over `inter`, instead of all within the first second of every interval (at 10,000 upstreams,
   * 10,000 connections in that second). The proxy starts upstreams healthy, so no connection waits
   * for a first verdict.
   */
  readonly maxInitialJitterMs?: number;
  /** Monotonic milliseconds; default `performance.now`. */
  readonly now?: () => number;
  readonly timers?: TimerScheduler;
  /** In [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

interface ScheduledTarget {
  readonly target: HealthCheckTarget;
  timer: unknown;
  inFlight: AbortController | undefined;
}

/**
 * Probes every target with a real TCP connection every `intervalMs`, one check at a time per
 * target: the next check is scheduled only when the previous one has finished.
 */
export class ActiveHealthChecker {
  readonly #settings: ActiveHealthCheckSettings;
  readonly #onResult: ActiveHealthCheckerOptions['onResult'];
  readonly #maxInitialJitterMs: number;
  readonly #now: () => number;
  readonly #timers: TimerScheduler;
  readonly #random: () => number;
  #scheduled = new Map<string, ScheduledTarget>();
  readonly #probes = new Set<Promise<unknown>>();
  #running = false;

  constructor(options: ActiveHealthCheckerOptions) {
    this.#settings = validateActive(options.settings);
    this.#maxInitialJitterMs = options.maxInitialJitterMs ?? this.#settings.intervalMs;
    requireInteger('maxInitialJitterMs', this.#maxInitialJitterMs, 0);
    this.#onResult = options.onResult;
    this.#now = options.now ?? (() => performance.now());
    this.#timers = options.timers ?? unrefTimers;
    this.#random = options.random ?? Math.random;
    this.setTargets(options.targets);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const entry of this.#scheduled.values()) this.#scheduleFirst(entry);
  }

  /** Clears timers and aborts in-flight probes; resolves once their sockets are closed. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const entry of this.#scheduled.values()) this.#halt(entry);
    await Promise.all(this.#probes);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * For config reload. A target whose name, host, port and health object are all unchanged keeps
   * its schedule; new or changed ones start (if running) with a fresh jitter; removed ones stop.
   */
  setTargets(targets: readonly HealthCheckTarget[]): void {
    validateTargets(targets, this.#settings);
    const next = new Map<string, ScheduledTarget>();
    for (const target of targets) {
      const kept = this.#scheduled.get(target.name);
      if (kept !== undefined && sameTarget(kept.target, target)) {
        next.set(target.name, kept);
        continue;
      }
      const entry: ScheduledTarget = { target, timer: undefined, inFlight: undefined };
      next.set(target.name, entry);
      if (this.#running) this.#scheduleFirst(entry);
    }
    for (const [name, entry] of this.#scheduled) {
      if (next.get(name) !== entry) this.#halt(entry);
    }
    this.#scheduled = next;
  }

  #scheduleFirst(entry: ScheduledTarget): void {
    this.#schedule(entry, Math.floor(this.#random() * this.#maxInitialJitterMs));
  }

  #schedule(entry: ScheduledTarget, delayMs: number): void {
    entry.timer = this.#timers.schedule(() => {
      entry.timer = undefined;
      this.#check(entry);
    }, delayMs);
  }

  #halt(entry: ScheduledTarget): void {
    if (entry.timer !== undefined) this.#timers.cancel(entry.timer);
    entry.timer = undefined;
    entry.inFlight?.abort();
    entry.inFlight = undefined;
  }

  #check(entry: ScheduledTarget): void {
    const { name, host, port, health } = entry.target;
    const controller = new AbortController();
    entry.inFlight = controller;
    const startedAt = this.#now();
    const done = probe(host, port, this.#settings, controller.signal, this.#timers).then((result) => {
      this.#probes.delete(done);
      // Also drops a result that settled just before stop() or removal aborted the probe.
      if (controller.signal.aborted || result === 'aborted') return;
      entry.inFlight = undefined;
      health.recordCheck(result === undefined);
      this.#onResult?.(name, result === undefined, result);
      if (this.#running && this.#scheduled.get(name) === entry) {
        const elapsedMs = this.#now() - startedAt;
        this.#schedule(entry, Math.max(0, Math.round(this.#settings.intervalMs - elapsedMs)));
      }
    });
    this.#probes.add(done);
  }
}

function sameTarget(a: HealthCheckTarget, b: HealthCheckTarget): boolean {
  return a.host === b.host && a.port === b.port && a.health === b.health;
}

function validateTargets(targets: readonly HealthCheckTarget[], settings: ActiveHealthCheckSettings): void {
  const names = new Set<string>();
  targets.forEach((target, i) => {
    if (typeof target.name !== 'string' || target.name === '' || names.has(target.name)) {
      throw new HealthSettingsError(`targets[${i}].name`, target.name, 'expected a non-empty, unique name');
    }
    names.add(target.name);
    if (typeof target.host !== 'string' || target.host === '') {
      throw new HealthSettingsError(`targets[${i}].host`, target.host, 'expected a host name or IP address');
    }
    requireInteger(`targets[${i}].port`, target.port, 1, 65535);
    if (!(target.health instanceof UpstreamHealth)) {
      throw new HealthSettingsError(`targets[${i}].health`, target.health, 'expected an UpstreamHealth');
    }
    // The health applies fall/rise; one built without `active` would silently use the defaults.
    const { unhealthyThreshold, healthyThreshold } = target.health.thresholds;
    if (
      unhealthyThreshold !== settings.unhealthyThreshold ||
      healthyThreshold !== settings.healthyThreshold
    ) {
      throw new HealthSettingsError(
        `targets[${i}].health`,
        `fall ${unhealthyThreshold}, rise ${healthyThreshold}`,
        `expected the checker's fall ${settings.unhealthyThreshold}, rise ${settings.healthyThreshold}: build the UpstreamHealth with { active: <the same settings> }`,
      );
    }
  });
}
