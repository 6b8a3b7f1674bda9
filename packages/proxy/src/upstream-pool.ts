import { isIP } from 'node:net';
import { type HistogramSeries, type Logger, splitHostPort } from '@switchyard/telemetry';
import { type Balancer, createBalancer } from './balancer.ts';
import type { PoolConfig, UpstreamConfig } from './config.ts';
import type { ConnectionCells } from './connection.ts';
import { dialFailureReason, dialTcp } from './dial.ts';
import { ActiveHealthChecker, type HealthCheckFailure } from './health-checker.ts';
import type { LibuvTcp, TcpHandle } from './libuv-tcp.ts';
import type { DialFailureReason, ProxyMetrics } from './metrics.ts';
import { UpstreamHealth } from './upstream-health.ts';

/** What every upstream of a pool shares: the pool's duration series, and a hook for health changes. */
interface PoolShared {
  readonly duration: HistogramSeries;
  /** Runs after every change of an upstream's `health.healthy`. */
  readonly onHealthChange: () => void;
}

/** One upstream of a pool: its address, health, load and metric cells. */
export class Upstream {
  readonly pool: string;
  readonly name: string;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** 4 or 6 when `host` is an IP address, 0 when it is a name looked up on every dial. */
  readonly ipFamily: number;
  readonly health: UpstreamHealth;
  readonly cells: ConnectionCells & {
    readonly connections: { add(delta?: number): void };
    readonly healthy: { set(value: number): void };
    readonly dialFailures: Readonly<Record<DialFailureReason, { add(delta?: number): void }>>;
    readonly checks: { readonly success: { add(): void }; readonly failure: { add(): void } };
  };
  /** Connections open to this upstream now (least_connections reads it). */
  activeConnections = 0;

  constructor(
    pool: PoolConfig,
    config: UpstreamConfig,
    metrics: ProxyMetrics,
    logger: Logger,
    shared: PoolShared,
  ) {
    this.pool = pool.name;
    this.name = config.name;
    this.address = config.address;
    ({ host: this.host, port: this.port } = splitHostPort(config.address));
    this.ipFamily = isIP(this.host);
    const names = { pool: pool.name, upstream: config.name };
    for (const family of [
      metrics.connections,
      metrics.active_connections,
      metrics.upstream_healthy,
      metrics.dial_failures,
      metrics.bytes,
      metrics.health_checks,
    ]) {
      family.register(names);
    }
    const failure = (reason: DialFailureReason) => metrics.dial_failures.cell({ ...names, reason });
    this.cells = {
      connections: metrics.connections.cell(names),
      active: metrics.active_connections.cell(names),
      healthy: metrics.upstream_healthy.cell(names),
      bytesClientToUpstream: metrics.bytes.cell({ ...names, direction: 'client_to_upstream' }),
      bytesUpstreamToClient: metrics.bytes.cell({ ...names, direction: 'upstream_to_client' }),
      duration: shared.duration,
      dialFailures: {
        timeout: failure('timeout'),
        refused: failure('refused'),
        reset: failure('reset'),
        unreachable: failure('unreachable'),
        other: failure('other'),
      },
      checks: {
        success: metrics.health_checks.cell({ ...names, result: 'success' }),
        failure: metrics.health_checks.cell({ ...names, result: 'failure' }),
      },
    };
    const cells = this.cells;
    this.health = new UpstreamHealth({
      initiallyHealthy: true,
      active: pool.healthCheck,
      passive: pool.passiveHealth.enabled ? pool.passiveHealth : undefined,
      onChange: (healthy, cause) => {
        cells.healthy.set(healthy ? 1 : 0);
        logger.warn(healthy ? 'upstream healthy again' : 'upstream unhealthy', { ...names, cause });
        shared.onHealthChange();
      },
    });
    cells.healthy.set(this.health.healthy ? 1 : 0);
  }
}

function isHealthy(upstream: Upstream): boolean {
  return upstream.health.healthy;
}

/**
 * Receives the outcome of one {@link UpstreamPool.dial}, exactly once: the upstream reached and the
 * connected socket's handle (not reading yet), or two undefineds when no attempt succeeded.
 */
export type DialCallback = (upstream: Upstream | undefined, handle: TcpHandle | undefined) => void;

/** The state of one client's dial across its failover attempts. */
interface PendingDial {
  readonly order: readonly Upstream[];
  readonly done: DialCallback;
  attempt: number;
}

/**
 * A named pool of upstreams with its balancing policy, health checking and dialling with bounded
 * failover. Reloads replace its config in place: upstreams that keep their name and address keep
 * their state, new ones start healthy, removed ones leave the rotation while their open
 * connections drain.
 */
export class UpstreamPool {
  readonly name: string;
  #config: PoolConfig;
  #balancer: Balancer;
  #upstreams: Upstream[] = [];
  readonly #upstreamsByName = new Map<string, Upstream>();
  /** The healthy upstreams in configured order; undefined after a health change until the next dial. */
  #healthy: Upstream[] | undefined;
  readonly #shared: PoolShared;
  #checker: ActiveHealthChecker | undefined;
  #running = false;
  readonly #metrics: ProxyMetrics;
  readonly #logger: Logger;
  readonly #tcp: LibuvTcp;

  constructor(config: PoolConfig, metrics: ProxyMetrics, logger: Logger, tcp: LibuvTcp) {
    this.name = config.name;
    this.#tcp = tcp;
    this.#config = config;
    this.#metrics = metrics;
    this.#logger = logger.child({ pool: config.name });
    this.#balancer = createBalancer(config.policy);
    const names = { pool: config.name };
    metrics['connection.duration'].register(names);
    this.#shared = {
      duration: metrics['connection.duration'].series(names),
      onHealthChange: () => {
        this.#healthy = undefined;
      },
    };
    this.#checker = this.#createChecker(config);
    this.#setUpstreams(config);
  }

  get config(): PoolConfig {
    return this.#config;
  }

  get upstreams(): readonly Upstream[] {
    return this.#upstreams;
  }

  start(): void {
    this.#running = true;
    this.#checker?.start();
  }

  stop(): void {
    this.#running = false;
    void this.#checker?.stop();
    for (const upstream of this.#upstreams) upstream.health.close();
  }

  /**
   * Applies a reloaded config of the same pool name. Changed health-check settings restart the
   * checks with fresh upstream state (their thresholds belong to that state).
   */
  update(config: PoolConfig): void {
    const previous = this.#config;
    this.#config = config;
    if (config.policy !== previous.policy) this.#balancer = createBalancer(config.policy);
    const healthChanged =
      JSON.stringify([config.healthCheck, config.passiveHealth]) !==
      JSON.stringify([previous.healthCheck, previous.passiveHealth]);
    if (healthChanged) {
      void this.#checker?.stop();
      for (const upstream of this.#upstreams) upstream.health.close();
      this.#upstreams = [];
      this.#checker = this.#createChecker(config);
      if (this.#running) this.#checker?.start();
    }
    this.#setUpstreams(config);
  }

  /** True when the policy needs the client's address (`dial`'s `clientIp`); otherwise pass ''. */
  get needsClientIp(): boolean {
    return this.#config.policy === 'client_ip_hash';
  }

  /**
   * Dials the upstreams in the policy's order, up to `maxAttempts`, and calls `done` with the first
   * connection made, or with undefined when none could be (each failure counted and fed to passive
   * health). Callback-shaped rather than a Promise: this runs once per client connection.
   */
  dial(clientIp: string, done: DialCallback): void {
    const order = this.#balancer.order(this.#healthyUpstreams(), clientIp, this.#config.maxAttempts);
    this.#dialNext({ order, done, attempt: 0 });
  }

  /** A connection to `upstream` closed. */
  released(upstream: Upstream): void {
    upstream.activeConnections -= 1;
  }

  /**
   * Rebuilt only after a health change: reading the health of every upstream on each dial cost
   * 12 µs a connection at 1,000 upstreams. An ejected upstream rejoins when its cool-down timer
   * fires (UpstreamHealth), not when a dial first finds the cool-down over.
   */
  #healthyUpstreams(): readonly Upstream[] {
    if (this.#healthy === undefined) this.#healthy = this.#upstreams.filter(isHealthy);
    return this.#healthy;
  }

  #dialNext(pending: PendingDial): void {
    const upstream = pending.order[pending.attempt];
    if (upstream === undefined) {
      pending.done(undefined, undefined);
      return;
    }
    dialTcp(
      this.#tcp,
      upstream.host,
      upstream.ipFamily,
      upstream.port,
      this.#config.dialTimeoutMs,
      (error, handle) => {
        if (error !== undefined || handle === undefined) {
          upstream.cells.dialFailures[dialFailureReason(error ?? 'UNKNOWN')].add();
          upstream.health.recordDialFailure();
          pending.attempt += 1;
          this.#dialNext(pending);
          return;
        }
        upstream.activeConnections += 1;
        upstream.health.recordDialSuccess();
        upstream.cells.connections.add();
        pending.done(upstream, handle);
      },
    );
  }

  #createChecker(config: PoolConfig): ActiveHealthChecker | undefined {
    const check = config.healthCheck;
    if (!check.enabled) return undefined;
    return new ActiveHealthChecker({
      settings: {
        intervalMs: check.intervalMs,
        timeoutMs: check.timeoutMs,
        unhealthyThreshold: check.unhealthyThreshold,
        healthyThreshold: check.healthyThreshold,
        ...(check.send !== undefined && { send: Buffer.from(check.send) }),
        ...(check.expect !== undefined && { expect: Buffer.from(check.expect) }),
      },
      targets: [],
      onResult: (name: string, ok: boolean, failure?: HealthCheckFailure) => {
        const upstream = this.#upstreamsByName.get(name);
        if (upstream === undefined) return;
        if (ok) upstream.cells.checks.success.add();
        else {
          upstream.cells.checks.failure.add();
          this.#logger.debug('health check failed', { upstream: name, failure });
        }
      },
    });
  }

  #setUpstreams(config: PoolConfig): void {
    const previous = new Map(
      this.#upstreams.map((upstream) => [`${upstream.name}\u0000${upstream.address}`, upstream]),
    );
    const next = config.upstreams.map((upstreamConfig) => {
      const key = `${upstreamConfig.name}\u0000${upstreamConfig.address}`;
      const kept = previous.get(key);
      previous.delete(key);
      return kept ?? new Upstream(config, upstreamConfig, this.#metrics, this.#logger, this.#shared);
    });
    this.#upstreams = next;
    this.#healthy = undefined;
    this.#upstreamsByName.clear();
    for (const upstream of next) this.#upstreamsByName.set(upstream.name, upstream);
    // Removed upstreams leave the rotation; their open connections carry on to the end. Their series
    // stay at their final values (see ConfiguredNames in the telemetry package).
    for (const removed of previous.values()) removed.health.close();
    this.#checker?.setTargets(
      next.map((upstream) => ({
        name: upstream.name,
        host: upstream.host,
        port: upstream.port,
        health: upstream.health,
      })),
    );
  }
}
