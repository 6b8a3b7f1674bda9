import { createServer, type Server } from 'node:net';
import { ListenError, splitHostPort } from '@switchyard/telemetry';
import type { ListenerConfig } from './config.ts';
import { type TcpHandle, takeOverAccept } from './libuv-tcp.ts';
import type { ProxyMetrics, RejectReason } from './metrics.ts';

/** Where an accepted client goes next, its socket not reading yet: the proxy picks the pool and dials. */
export type ClientHandler = (client: TcpHandle, listener: Listener) => void;

/**
 * One configured listener: accepts clients, enforces its connection limit, and hands each client
 * to the proxy. Rejected clients are closed at once and counted by reason.
 */
export class Listener {
  readonly name: string;
  readonly listen: string;
  #config: ListenerConfig;
  readonly #server: Server;
  readonly #handler: ClientHandler;
  readonly #cells;
  #open = 0;
  #draining = false;

  constructor(config: ListenerConfig, metrics: ProxyMetrics, handler: ClientHandler) {
    this.name = config.name;
    this.listen = config.listen;
    this.#config = config;
    this.#handler = handler;
    const names = { listener: config.name };
    metrics.accepted_connections.register(names);
    metrics.listener_active_connections.register(names);
    metrics.rejected_connections.register(names);
    this.#cells = {
      accepted: metrics.accepted_connections.cell(names),
      active: metrics.listener_active_connections.cell(names),
      rejected: {
        no_healthy_upstream: metrics.rejected_connections.cell({ ...names, reason: 'no_healthy_upstream' }),
        max_connections: metrics.rejected_connections.cell({ ...names, reason: 'max_connections' }),
        draining: metrics.rejected_connections.cell({ ...names, reason: 'draining' }),
      } satisfies Record<RejectReason, unknown>,
    };
    // Accepted connections never become net.Sockets: start() takes their libuv handles.
    this.#server = createServer();
  }

  get config(): ListenerConfig {
    return this.#config;
  }

  /** Takes a reloaded config of the same name and address: pool and limit apply to new clients. */
  update(config: ListenerConfig): void {
    this.#config = config;
  }

  async start(): Promise<{ host: string; port: number }> {
    const { host, port } = splitHostPort(this.listen);
    await new Promise<void>((resolve, reject) => {
      const failed = (error: NodeJS.ErrnoException) =>
        reject(new ListenError(`proxy listener "${this.name}"`, this.listen, error));
      this.#server.once('error', failed);
      this.#server.listen({ host, port, backlog: 4096 }, () => {
        this.#server.off('error', failed);
        resolve();
      });
    });
    try {
      takeOverAccept(this.#server, (client) => this.#accept(client));
    } catch (error) {
      this.#server.close();
      throw error;
    }
    const address = this.#server.address() as { address: string; port: number };
    return { host: address.address, port: address.port };
  }

  /** Stops accepting for good (shutdown, or removed by a reload); open connections carry on. */
  close(): void {
    this.#draining = true;
    if (this.#server.listening) this.#server.close();
  }

  get openConnections(): number {
    return this.#open;
  }

  /** Counts a client the proxy could not serve and closes it. */
  reject(client: TcpHandle, reason: RejectReason): void {
    this.#cells.rejected[reason].add();
    client.close();
  }

  /** The proxy calls this once per handed-off client when both of its sockets are gone. */
  released(): void {
    this.#open -= 1;
    this.#cells.active.add(-1);
  }

  #accept(client: TcpHandle): void {
    this.#cells.accepted.add();
    if (this.#draining) {
      this.reject(client, 'draining');
      return;
    }
    if (this.#open >= this.#config.maxConnections) {
      this.reject(client, 'max_connections');
      return;
    }
    this.#open += 1;
    this.#cells.active.add(1);
    this.#handler(client, this);
  }
}
