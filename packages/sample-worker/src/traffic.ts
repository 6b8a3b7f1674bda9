import { connect } from 'node:net';
import type { Logger } from '@switchyard/telemetry';

export interface TrafficOptions {
  readonly host: string;
  readonly port: number;
  readonly connectionsPerSecond: number;
  readonly messagesPerConnection: number;
  readonly messageBytes: number;
  readonly logger: Logger;
}

/**
 * Synthetic clients for the demo: each opens a connection, sends its messages one after another,
 * waits for every echo, and closes. Runs until `stop()`.
 */
export class TrafficGenerator {
  readonly #options: TrafficOptions;
  #timer: NodeJS.Timeout | undefined;
  #clientsStarted = 0;
  #clientsFailed = 0;

  constructor(options: TrafficOptions) {
    this.#options = options;
  }

  start(): void {
    const intervalMs = Math.max(1, Math.round(1000 / this.#options.connectionsPerSecond));
    this.#timer = setInterval(() => this.#client(), intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  get stats(): { clientsStarted: number; clientsFailed: number } {
    return { clientsStarted: this.#clientsStarted, clientsFailed: this.#clientsFailed };
  }

  #client(): void {
    const { host, port, messagesPerConnection, messageBytes } = this.#options;
    this.#clientsStarted += 1;
    const message = Buffer.alloc(messageBytes, 0x61);
    const expected = messagesPerConnection * messageBytes;
    let echoed = 0;
    let sent = 0;
    const socket = connect({ host, port }, () => {
      socket.write(message);
      sent += 1;
    });
    socket.on('data', (chunk: Buffer) => {
      echoed += chunk.length;
      if (echoed >= sent * messageBytes && sent < messagesPerConnection) {
        socket.write(message);
        sent += 1;
      }
      if (echoed >= expected) socket.end();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.#clientsFailed += 1;
      if (this.#clientsFailed === 1)
        this.#options.logger.warn('demo traffic client failed', { code: error.code });
    });
  }
}
