import { connect } from 'node:net';
import { type Logger, splitHostPort } from '@switchyard/telemetry';
import { type Balancer, createBalancer } from './balancer.ts';
import type { PoolConfig, UpstreamConfig } from './config.ts';
import type { ConnectionCells } from './connection.ts';
import { ActiveHealthChecker, type HealthCheckFailure } from './health-checker.ts';
import type { DialFailureReason, ProxyMetrics } from './metrics.ts';
import { Pump } from './pump.ts';
import { UpstreamHealth } from './upstream-health.ts';

/** One upstream of a pool: its address, health, load and metric cells. */
export class Upstream {
  readonly pool: string;
  readonly name: string;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly health: UpstreamHealth;
  readonly cells: ConnectionCells & {
    readonly connections: { add(delta?: number): void };
    readonly healthy: { set(value: number): void };
    readonly dialFailures: Readonly<Record<DialFailureReason, { add(delta?: number): void }>>;
    readonly checks: { readonly success: { add(): void }; readonly failure: { add(): void } };
  };
  /** Connections open to this upstream now (least_connections reads it). */
  activeConnections = 0;

  constructor(pool: PoolConfig, config: UpstreamConfig, metrics: ProxyMetrics, logger: Logger) {
    this.pool = pool.name;
    this.name = config.name;
    this.address = config.address;
    ({ host: this.host, port: this.port } = splitHostPort(config.address));
    const names = { pool: pool.name, upstream: config.name };
    for (const family of [
      metrics.connections,
      metrics.active_connections,
      metrics.upstream_healthy,
      metrics.dial_failures,
      metrics.bytes,
      metrics['connection.duration'],
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
      duration: metrics['connection.duration'].series(names),
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
      },
    });
    cells.healthy.set(this.health.healthy ? 1 : 0);
  }
}

function ignoreError(): void {}

function isHealthy(upstream: Upstream): boolean {
  return upstream.health.healthy;
}

/** Why a dial failed, as the `reason` label of dial_failures. */
export function dialFailureReason(error: NodeJS.ErrnoException | 'timeout'): DialFailureReason {
  if (error === 'timeout') return 'timeout';
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unreachable';
    case 'ETIMEDOUT':
      return 'timeout';
    default:
      return 'other';
  }
}

/**
 * Receives the outcome of one {@link UpstreamPool.dial}, exactly once: the upstream reached and the
 * pump reading its connected socket (not reading yet), or two undefineds when no attempt succeeded.
 */
export type DialCallback = (upstream: Upstream | undefined, pump: Pump | undefined) => void;

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
  #checker: ActiveHealthChecker | undefined;
  #running = false;
  readonly #metrics: ProxyMetrics;
  readonly #logger: Logger;

  constructor(config: PoolConfig, metrics: ProxyMetrics, logger: Logger) {
    this.name = config.name;
    this.#config = config;
    this.#metrics = metrics;
    this.#logger = logger.child({ pool: config.name });
    this.#balancer = createBalancer(config.policy);
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
    const healthy = this.#upstreams.filter(isHealthy);
    const order = this.#balancer.order(healthy, clientIp, this.#config.maxAttempts);
    this.#dialNext({ order, done, attempt: 0 });
  }

  /** A connection to `upstream` closed. */
  released(upstream: Upstream): void {
    upstream.activeConnections -= 1;
  }

  #dialNext(pending: PendingDial): void {
    const upstream = pending.order[pending.attempt];
    if (upstream === undefined) {
      pending.done(undefined, undefined);
      return;
    }
    const pump = new Pump((onread) =>
      connect({ host: upstream.host, port: upstream.port, allowHalfOpen: true, noDelay: true, onread }),
    );
    const socket = pump.source;
    // Not reading until the pump is piped: the connection it will feed does not exist yet.
    socket.pause();
    const failed = (reason: DialFailureReason) => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('connect', onConnect);
      socket.on('error', ignoreError);
      socket.destroy();
      upstream.cells.dialFailures[reason].add();
      upstream.health.recordDialFailure();
      pending.attempt += 1;
      this.#dialNext(pending);
    };
    const onError = (error: NodeJS.ErrnoException) => failed(dialFailureReason(error));
    const onConnect = () => {
      clearTimeout(timer);
      socket.off('error', onError);
      upstream.activeConnections += 1;
      upstream.health.recordDialSuccess();
      upstream.cells.connections.add();
      pending.done(upstream, pump);
    };
    const timer = setTimeout(failed, this.#config.dialTimeoutMs, 'timeout');
    socket.on('error', onError);
    socket.on('connect', onConnect);
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
        const upstream = this.#upstreams.find((candidate) => candidate.name === name);
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
      return kept ?? new Upstream(config, upstreamConfig, this.#metrics, this.#logger);
    });
    this.#upstreams = next;
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
