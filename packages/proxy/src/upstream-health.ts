import { inspect } from 'node:util';
import { SwitchyardError } from '@switchyard/telemetry';

/** Active checks, as HAProxy's `inter`, `timeout check`, `fall`, `rise` and `tcp-check send/expect`. */
export interface ActiveHealthCheckSettings {
  /** Milliseconds from the start of one check of an upstream to the start of the next. */
  readonly intervalMs: number;
  /** Milliseconds within which connect (and send/expect) must finish; at most `intervalMs`. */
  readonly timeoutMs: number;
  /** Consecutive failed checks that turn a healthy upstream unhealthy ("fall"). */
  readonly unhealthyThreshold: number;
  /** Consecutive passed checks that turn an unhealthy upstream healthy ("rise"). */
  readonly healthyThreshold: number;
  /** Bytes written once connected. */
  readonly send?: Buffer;
  /** The reply must start with these bytes; the check reads until it has this many or times out. */
  readonly expect?: Buffer;
}

/** Passive checks from real traffic, as Envoy's outlier detection. */
export interface PassiveHealthSettings {
  /** Consecutive dial failures, all within `windowMs`, that eject an upstream. */
  readonly maxFailures: number;
  /** Milliseconds; a dial failure stops counting once it is this old. */
  readonly windowMs: number;
  /** Milliseconds an ejected upstream stays unhealthy. */
  readonly cooldownMs: number;
}

export type HealthChangeCause = 'active' | 'passive' | 'cooldown_over';

/** Where health timers come from; tests pass a fake, the default is unref'd `setTimeout`. */
export interface TimerScheduler {
  /** Runs `callback` once after `delayMs`; the timer must not keep the process alive. */
  schedule(callback: () => void, delayMs: number): unknown;
  cancel(handle: unknown): void;
}

export const unrefTimers: TimerScheduler = {
  schedule: (callback, delayMs) => setTimeout(callback, delayMs).unref(),
  cancel: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** A health check setting or target holds a value that is not allowed. */
export class HealthSettingsError extends SwitchyardError {
  readonly field: string;
  readonly value: unknown;

  constructor(field: string, value: unknown, allowed: string) {
    super('SWY_ERR_PROXY_HEALTH_SETTINGS', `proxy health: ${field} is ${inspect(value)}; ${allowed}`);
    this.field = field;
    this.value = value;
  }
}

export function requireInteger(
  field: string,
  value: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`;
    throw new HealthSettingsError(field, value, `expected an integer ${range}`);
  }
}

export function validateThresholds(
  active: Pick<ActiveHealthCheckSettings, 'unhealthyThreshold' | 'healthyThreshold'>,
): void {
  requireInteger('unhealthyThreshold', active.unhealthyThreshold, 1);
  requireInteger('healthyThreshold', active.healthyThreshold, 1);
}

function validatePassive(settings: PassiveHealthSettings): PassiveHealthSettings {
  requireInteger('maxFailures', settings.maxFailures, 1);
  requireInteger('windowMs', settings.windowMs, 1);
  requireInteger('cooldownMs', settings.cooldownMs, 1);
  return Object.freeze({ ...settings });
}

export interface UpstreamHealthOptions {
  /** Rise/fall thresholds for `recordCheck`; default fall 3, rise 2 (HAProxy's defaults). */
  readonly active?: Pick<ActiveHealthCheckSettings, 'unhealthyThreshold' | 'healthyThreshold'>;
  /** Leave out to never eject on dial failures. */
  readonly passive?: PassiveHealthSettings;
  /**
   * Default true, as HAProxy starts servers up. Either way the first verdict change takes a full
   * streak (HAProxy's `init-state fully-up` / `fully-down`), not HAProxy's default of going down on
   * the first failed check: a dead upstream at startup is caught sooner by passive ejection.
   */
  readonly initiallyHealthy?: boolean;
  /** Called on every change of `healthy`, with what caused it. */
  readonly onChange?: (healthy: boolean, cause: HealthChangeCause) => void;
  /** Monotonic milliseconds; default `performance.now`. */
  readonly now?: () => number;
  readonly timers?: TimerScheduler;
}

/**
 * The health of one upstream, from active check results (rise/fall) and from dial results of real
 * traffic (ejection for a cool-down). Healthy = the active verdict is healthy AND not ejected.
 */
export class UpstreamHealth {
  readonly #unhealthyThreshold: number;
  readonly #healthyThreshold: number;
  readonly #passive: PassiveHealthSettings | undefined;
  readonly #onChange: UpstreamHealthOptions['onChange'];
  readonly #now: () => number;
  readonly #timers: TimerScheduler;
  #activeHealthy: boolean;
  /** Consecutive check results that disagree with the active verdict. */
  #streak = 0;
  /** Times of the current run of dial failures, oldest first, none older than windowMs. */
  readonly #dialFailuresAt: number[] = [];
  #cooldownUntil: number | undefined;
  #cooldownTimer: unknown;
  #closed = false;

  constructor(options: UpstreamHealthOptions = {}) {
    const active = options.active ?? { unhealthyThreshold: 3, healthyThreshold: 2 };
    validateThresholds(active);
    this.#unhealthyThreshold = active.unhealthyThreshold;
    this.#healthyThreshold = active.healthyThreshold;
    this.#passive = options.passive && validatePassive(options.passive);
    this.#onChange = options.onChange;
    this.#now = options.now ?? (() => performance.now());
    this.#timers = options.timers ?? unrefTimers;
    this.#activeHealthy = options.initiallyHealthy ?? true;
  }

  get healthy(): boolean {
    this.#endCooldownIfDue();
    return this.#isHealthy();
  }

  /** One active check result. */
  recordCheck(ok: boolean): void {
    this.#endCooldownIfDue();
    if (ok === this.#activeHealthy) {
      this.#streak = 0;
      return;
    }
    this.#streak++;
    const threshold = this.#activeHealthy ? this.#unhealthyThreshold : this.#healthyThreshold;
    if (this.#streak < threshold) return;
    const before = this.#isHealthy();
    this.#activeHealthy = ok;
    this.#streak = 0;
    this.#notifyIfChanged(before, 'active');
  }

  /**
   * A connection to this upstream for real traffic failed. Failures while ejected are dropped: they
   * belong to the episode that caused the ejection, and must not extend it.
   */
  recordDialFailure(): void {
    this.#endCooldownIfDue();
    const passive = this.#passive;
    if (passive === undefined || this.#cooldownUntil !== undefined) return;
    const now = this.#now();
    const failuresAt = this.#dialFailuresAt;
    failuresAt.push(now);
    while (now - failuresAt[0]! >= passive.windowMs) failuresAt.shift();
    if (failuresAt.length < passive.maxFailures) return;
    failuresAt.length = 0;
    const before = this.#isHealthy();
    this.#cooldownUntil = now + passive.cooldownMs;
    this.#armCooldownTimer(passive.cooldownMs);
    this.#notifyIfChanged(before, 'passive');
  }

  /**
   * A connection for real traffic succeeded: the failure run ends, as Envoy's consecutive-failure
   * detection, so that a busy upstream failing 1 dial in 1000 is not ejected.
   */
  recordDialSuccess(): void {
    this.#endCooldownIfDue();
    this.#dialFailuresAt.length = 0;
  }

  /** Fall and rise, so that a checker can refuse a health built with other thresholds than its own. */
  get thresholds(): Pick<ActiveHealthCheckSettings, 'unhealthyThreshold' | 'healthyThreshold'> {
    return { unhealthyThreshold: this.#unhealthyThreshold, healthyThreshold: this.#healthyThreshold };
  }

  /** Clears the cool-down timer; a cool-down still ends on the next read of `healthy`. */
  close(): void {
    this.#closed = true;
    this.#cancelCooldownTimer();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #isHealthy(): boolean {
    return this.#activeHealthy && this.#cooldownUntil === undefined;
  }

  #notifyIfChanged(before: boolean, cause: HealthChangeCause): void {
    const after = this.#isHealthy();
    if (after !== before) this.#onChange?.(after, cause);
  }

  #endCooldownIfDue(): void {
    if (this.#cooldownUntil === undefined || this.#now() < this.#cooldownUntil) return;
    this.#cooldownUntil = undefined;
    this.#cancelCooldownTimer();
    this.#notifyIfChanged(false, 'cooldown_over');
  }

  #armCooldownTimer(delayMs: number): void {
    if (this.#closed) return;
    this.#cooldownTimer = this.#timers.schedule(() => {
      this.#cooldownTimer = undefined;
      this.#endCooldownIfDue();
      // Timers run on libuv's cached loop time and can fire a little before `now()` reaches the end.
      if (this.#cooldownUntil !== undefined) {
        this.#armCooldownTimer(Math.max(1, Math.ceil(this.#cooldownUntil - this.#now())));
      }
    }, delayMs);
  }

  #cancelCooldownTimer(): void {
    if (this.#cooldownTimer === undefined) return;
    this.#timers.cancel(this.#cooldownTimer);
    this.#cooldownTimer = undefined;
  }
}
