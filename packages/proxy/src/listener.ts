import { createServer, type Server, Socket } from 'node:net';
import { ListenError, splitHostPort } from '@switchyard/telemetry';
import type { ListenerConfig } from './config.ts';
import type { ProxyMetrics, RejectReason } from './metrics.ts';
import { Pump } from './pump.ts';

/** Where an accepted client goes next, its socket not reading yet: the proxy picks the pool and dials. */
export type ClientHandler = (client: Pump, listener: Listener) => void;

/** What `net.Server` keeps of its listening libuv handle, in `server._handle`. */
interface ListenHandle {
  onconnection: (status: number, clientHandle: object | undefined) => void;
}

function ignoreError(): void {}

/**
 * Makes `server` hand each accepted client to `accept` as a {@link Pump} whose socket reads into the
 * pump's buffer. `net.Server` has no `onread` option for the sockets it accepts, so this replaces
 * its accept callback (`server._handle.onconnection`, as in Node 24's lib/net.js) with one that
 * builds the client socket as the server would (the accepted handle, `allowHalfOpen`, not reading
 * yet), plus `onread`. Returns false, changing nothing, when the handle does not look like that:
 * then the caller takes the server's 'connection' sockets with {@link Pump.adopt}.
 */
export function acceptIntoPumps(server: Server, accept: (client: Pump) => void): boolean {
  const handle = (server as unknown as { _handle?: Partial<ListenHandle> | null })._handle;
  if (typeof handle?.onconnection !== 'function') return false;
  (handle as ListenHandle).onconnection = (status, clientHandle) => {
    // A failed accept(2) (EMFILE, ENFILE, ECONNABORTED) concerns one client; libuv keeps listening.
    if (status < 0 || clientHandle === undefined) return;
    const pump = new Pump(
      (onread) =>
        new Socket({ handle: clientHandle, allowHalfOpen: true, pauseOnCreate: true, onread } as object),
    );
    pump.source.setNoDelay(true);
    accept(pump);
  };
  return true;
}

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
    // allowHalfOpen: a client's FIN must not close our side; the proxy forwards it upstream. These
    // options only matter if acceptIntoPumps cannot take over the accept callback (see start()).
    this.#server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
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
    if (!acceptIntoPumps(this.#server, (client) => this.#accept(client))) {
      this.#server.on('connection', (client: Socket) => this.#accept(Pump.adopt(client)));
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
  reject(client: Socket, reason: RejectReason): void {
    this.#cells.rejected[reason].add();
    client.on('error', ignoreError);
    client.destroy();
  }

  /** The proxy calls this once per handed-off client when both of its sockets are gone. */
  released(): void {
    this.#open -= 1;
    this.#cells.active.add(-1);
  }

  #accept(client: Pump): void {
    this.#cells.accepted.add();
    if (this.#draining) {
      this.reject(client.source, 'draining');
      return;
    }
    if (this.#open >= this.#config.maxConnections) {
      this.reject(client.source, 'max_connections');
      return;
    }
    this.#open += 1;
    this.#cells.active.add(1);
    this.#handler(client, this);
  }
}
