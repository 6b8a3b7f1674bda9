import type { Drainable, Logger } from '@switchyard/telemetry';
import type { ProxyConfig } from './config.ts';
import { ProxiedConnection } from './connection.ts';
import { type LibuvTcp, loadLibuvTcp, localAddress, peerAddress, type TcpHandle } from './libuv-tcp.ts';
import { Listener } from './listener.ts';
import type { ProxyMetrics } from './metrics.ts';
import { encodeProxyV1, encodeProxyV2 } from './proxy-protocol.ts';
import { type Upstream, UpstreamPool } from './upstream-pool.ts';

/** How often idle connections are looked for, at most (a quarter of the shortest idle timeout). */
const MAX_IDLE_SWEEP_MS = 5_000;
const MIN_IDLE_SWEEP_MS = 50;

/**
 * The proxy: listeners, pools and every open connection, built from the config and rebuilt in
 * place on reload. Existing connections are never touched by a reload; removed listeners stop
 * accepting, removed upstreams leave the rotation and drain.
 */
export class ProxyServer implements Drainable {
  readonly #metrics: ProxyMetrics;
  readonly #logger: Logger;
  readonly #tcp: LibuvTcp;
  readonly #pools = new Map<string, UpstreamPool>();
  readonly #listeners = new Map<string, Listener>();
  readonly #open = new Set<ProxiedConnection>();
  /** Clients accepted and not yet spliced or rejected (dialling). */
  #dialling = 0;
  #config: ProxyConfig;
  #idleSweep: NodeJS.Timeout | undefined;
  #accepting = true;
  #drainedWaiters: Array<() => void> = [];

  /** Throws LibuvTcpUnavailableError when this Node lacks the TCP bindings the data path uses. */
  constructor(config: ProxyConfig, metrics: ProxyMetrics, logger: Logger) {
    this.#tcp = loadLibuvTcp();
    this.#config = config;
    this.#metrics = metrics;
    this.#logger = logger;
    // Bytes are read from the sockets when a reader collects: no per-chunk work on the data path.
    metrics.bytes.onCollect(() => {
      for (const connection of this.#open) connection.flushBytes();
    });
  }

  /** Binds every listener and starts health checks; resolves with the bound addresses by listener name. */
  async start(): Promise<Map<string, { host: string; port: number }>> {
    return this.#apply(this.#config);
  }

  /**
   * Applies a new config: new pools and listeners start, changed ones update in place, removed ones
   * stop taking new clients. Rejects (leaving the running config in force) if a new listener cannot
   * bind.
   */
  async reload(config: ProxyConfig): Promise<Map<string, { host: string; port: number }>> {
    const bound = await this.#apply(config);
    this.#config = config;
    return bound;
  }

  get config(): ProxyConfig {
    return this.#config;
  }

  get pools(): ReadonlyMap<string, UpstreamPool> {
    return this.#pools;
  }

  /** Open proxied connections, for tests and the admin view. */
  get openConnections(): number {
    return this.#open.size;
  }

  /** Bytes held in memory by all open connections (bounded by socket high-water marks). */
  get bufferedBytes(): number {
    let total = 0;
    for (const connection of this.#open) total += connection.bufferedBytes;
    return total;
  }

  stopAccepting(): void {
    this.#accepting = false;
    for (const listener of this.#listeners.values()) listener.close();
    for (const pool of this.#pools.values()) pool.stop();
  }

  drained(): Promise<void> {
    if (this.#open.size === 0 && this.#dialling === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainedWaiters.push(resolve));
  }

  forceClose(): void {
    for (const connection of this.#open) connection.destroy();
  }

  async #apply(config: ProxyConfig): Promise<Map<string, { host: string; port: number }>> {
    const poolNames = new Set(config.pools.map((pool) => pool.name));
    for (const poolConfig of config.pools) {
      const existing = this.#pools.get(poolConfig.name);
      if (existing === undefined) {
        const pool = new UpstreamPool(poolConfig, this.#metrics, this.#logger, this.#tcp);
        this.#pools.set(poolConfig.name, pool);
        if (this.#accepting) pool.start();
      } else {
        existing.update(poolConfig);
      }
    }
    const bound = new Map<string, { host: string; port: number }>();
    const started: Listener[] = [];
    try {
      for (const listenerConfig of config.listeners) {
        const existing = this.#listeners.get(listenerConfig.name);
        if (existing !== undefined && existing.listen === listenerConfig.listen) {
          existing.update(listenerConfig);
          continue;
        }
        const listener = new Listener(listenerConfig, this.#metrics, (client, from) =>
          this.#handle(client, from),
        );
        bound.set(listenerConfig.name, await listener.start());
        started.push(listener);
      }
    } catch (error) {
      for (const listener of started) listener.close();
      throw error;
    }
    const listenerNames = new Set(config.listeners.map((listener) => listener.name));
    for (const [name, listener] of this.#listeners) {
      const replaced = started.some((candidate) => candidate.name === name);
      if (!listenerNames.has(name) || replaced) {
        listener.close();
        if (!replaced) this.#listeners.delete(name);
      }
    }
    for (const listener of started) this.#listeners.set(listener.name, listener);
    for (const [name, pool] of this.#pools) {
      if (!poolNames.has(name)) {
        pool.update({ ...pool.config, upstreams: [] });
        pool.stop();
        this.#pools.delete(name);
      }
    }
    this.#scheduleIdleSweep(config);
    return bound;
  }

  #handle(client: TcpHandle, listener: Listener): void {
    const pool = this.#pools.get(listener.config.pool);
    if (pool === undefined) {
      listener.reject(client, 'no_healthy_upstream');
      listener.released();
      return;
    }
    this.#dialling += 1;
    // Reading the peer address costs a system call: only the policy that hashes it asks for it.
    const clientIp = pool.needsClientIp ? (peerAddress(client)?.address ?? '') : '';
    // What the client sends while we dial waits in the kernel: nothing reads it until it is spliced.
    pool.dial(clientIp, (upstream, upstreamHandle) => {
      this.#dialling -= 1;
      if (upstream === undefined || upstreamHandle === undefined) {
        listener.reject(client, 'no_healthy_upstream');
        listener.released();
        this.#checkDrained();
        return;
      }
      this.#splice(client, listener, pool, upstream, upstreamHandle);
    });
  }

  #splice(
    client: TcpHandle,
    listener: Listener,
    pool: UpstreamPool,
    upstream: Upstream,
    upstreamHandle: TcpHandle,
  ): void {
    const connection = new ProxiedConnection(this.#tcp, client, upstreamHandle, {
      cells: upstream.cells,
      idleTimeoutMs: pool.config.idleTimeoutMs,
      header: this.#proxyHeader(pool.config.proxyProtocol, client),
      onClosed: (closed) => {
        this.#open.delete(closed);
        pool.released(upstream);
        listener.released();
        this.#checkDrained();
      },
    });
    // A connection can end inside its constructor (the client left while its upstream was dialled).
    if (!connection.closed) this.#open.add(connection);
  }

  #proxyHeader(version: 'none' | 'v1' | 'v2', client: TcpHandle): Buffer | undefined {
    if (version === 'none') return undefined;
    const source = peerAddress(client);
    const destination = localAddress(client);
    // A client that left before we could read its addresses: the header says UNKNOWN (v1) or LOCAL
    // (v2), as the PROXY protocol specification allows, rather than inventing one.
    const addresses =
      source === undefined || destination === undefined
        ? undefined
        : {
            sourceAddress: source.address,
            sourcePort: source.port,
            destinationAddress: destination.address,
            destinationPort: destination.port,
          };
    return version === 'v1' ? encodeProxyV1(addresses) : encodeProxyV2(addresses);
  }

  #checkDrained(): void {
    if (this.#open.size > 0 || this.#dialling > 0 || this.#drainedWaiters.length === 0) return;
    const waiters = this.#drainedWaiters;
    this.#drainedWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #scheduleIdleSweep(config: ProxyConfig): void {
    clearInterval(this.#idleSweep);
    const shortest = Math.min(...config.pools.map((pool) => pool.idleTimeoutMs));
    const every = Math.max(MIN_IDLE_SWEEP_MS, Math.min(MAX_IDLE_SWEEP_MS, Math.floor(shortest / 4)));
    this.#idleSweep = setInterval(() => this.#sweepIdle(), every);
    this.#idleSweep.unref();
  }

  #sweepIdle(): void {
    const now = performance.now();
    for (const connection of this.#open) {
      if (connection.idleFor(now, connection.idleTimeoutMs)) connection.destroy();
    }
  }

  /** Stops the idle sweep (after shutdown). */
  close(): void {
    clearInterval(this.#idleSweep);
  }
}
