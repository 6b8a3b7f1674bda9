import { connect, type Socket } from 'node:net';
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

export type HealthChangeCause = 'active' | 'passive' | 'cooldown_over';

/** Where health timers come from; tests pass a fake, the default is unref'd `setTimeout`. */
export interface TimerScheduler {
  /** Runs `callback` once after `delayMs`; the timer must not keep the process alive. */
  schedule(callback: () => void, delayMs: number): unknown;
  cancel(handle: unknown): void;
}

const unrefTimers: TimerScheduler = {
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

function requireInteger(field: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`;
    throw new HealthSettingsError(field, value, `expected an integer ${range}`);
  }
}

function validateThresholds(
  active: Pick<ActiveHealthCheckSettings, 'unhealthyThreshold' | 'healthyThreshold'>,
): void {
  requireInteger('unhealthyThreshold', active.unhealthyThreshold, 1);
  requireInteger('healthyThreshold', active.healthyThreshold, 1);
}

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

const FAILURE_BY_ERRNO: ReadonlyMap<string, HealthCheckFailure> = new Map([
  ['ECONNREFUSED', 'refused'],
  ['ECONNRESET', 'reset'],
  ['EPIPE', 'reset'],
  ['ECONNABORTED', 'reset'],
  ['EHOSTUNREACH', 'unreachable'],
  ['ENETUNREACH', 'unreachable'],
  ['EADDRNOTAVAIL', 'unreachable'],
  ['EHOSTDOWN', 'unreachable'],
  ['ENETDOWN', 'unreachable'],
  ['ENOTFOUND', 'unreachable'],
  ['EAI_AGAIN', 'unreachable'],
  ['ETIMEDOUT', 'timeout'],
]);

/** Maps a socket error to its `health_checks_total{result}` label; unknown codes are `other`. */
export function classifyCheckFailure(error: unknown): HealthCheckFailure {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return (typeof code === 'string' && FAILURE_BY_ERRNO.get(code)) || 'other';
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
   * First checks start at a random delay below this, so that upstreams are not probed in lockstep;
   * default min(intervalMs, 1000): spread, yet a first verdict within a second.
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
    this.#maxInitialJitterMs = options.maxInitialJitterMs ?? Math.min(this.#settings.intervalMs, 1000);
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
