import { createServer, type Server, type Socket } from 'node:net';
import { type Drainable, ListenError, type Logger, type Telemetry } from '@switchyard/telemetry';
import type { sampleCatalog } from './metrics.ts';

type SampleTelemetry = Telemetry<(typeof sampleCatalog)['declaration']>;

export interface EchoServerOptions {
  readonly host: string;
  readonly port: number;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  readonly telemetry: SampleTelemetry;
  readonly logger: Logger;
}

function errorReason(error: NodeJS.ErrnoException): 'reset' | 'other' {
  return error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'reset' : 'other';
}

/**
 * A TCP echo listener: the smallest real data plane that moves every kind of instrument. Per-chunk
 * accounting is a plain field increment on cells resolved once, as the telemetry package asks.
 */
export class EchoServer implements Drainable {
  readonly #options: EchoServerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #cells;
  #drainedWaiters: Array<() => void> = [];

  constructor(options: EchoServerOptions) {
    this.#options = options;
    const metrics = options.telemetry.metrics;
    this.#cells = {
      connections: metrics.connections.cell(),
      active: metrics.active_connections.cell(),
      received: metrics.bytes.cell({ direction: 'received' }),
      sent: metrics.bytes.cell({ direction: 'sent' }),
      duration: metrics['connection.duration'].series(),
      errors: {
        reset: metrics['connection.errors'].cell({ reason: 'reset' }),
        timeout: metrics['connection.errors'].cell({ reason: 'timeout' }),
        other: metrics['connection.errors'].cell({ reason: 'other' }),
      },
    };
    this.#server = createServer((socket) => this.#accept(socket));
    this.#server.maxConnections = options.maxConnections;
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      const failed = (error: NodeJS.ErrnoException) =>
        reject(new ListenError('echo listener', `${this.#options.host}:${this.#options.port}`, error));
      this.#server.once('error', failed);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', failed);
        resolve();
      });
    });
    const address = this.#server.address() as { address: string; port: number };
    return { host: address.address, port: address.port };
  }

  #accept(socket: Socket): void {
    const cells = this.#cells;
    const opened = performance.now();
    cells.connections.add();
    cells.active.add(1);
    this.#sockets.add(socket);
    socket.setTimeout(this.#options.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      cells.received.add(chunk.length);
      // Echo with backpressure: stop reading while the kernel buffer toward the client is full.
      if (!socket.write(chunk)) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
      cells.sent.add(chunk.length);
    });
    socket.on('end', () => socket.end());
    socket.on('timeout', () => {
      cells.errors.timeout.add();
      socket.destroy();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      cells.errors[errorReason(error)].add();
      this.#options.logger.debug('echo connection error', { code: error.code });
    });
    socket.on('close', () => {
      cells.active.add(-1);
      cells.duration.record((performance.now() - opened) / 1000);
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) this.#notifyDrained();
    });
  }

  #notifyDrained(): void {
    const waiters = this.#drainedWaiters;
    this.#drainedWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Closes the listening socket at once; open connections carry on until they end. */
  stopAccepting(): void {
    if (this.#server.listening) this.#server.close();
  }

  drained(): Promise<void> {
    if (this.#sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainedWaiters.push(resolve));
  }

  forceClose(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  get openConnections(): number {
    return this.#sockets.size;
  }
}
