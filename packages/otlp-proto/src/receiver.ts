import { EventEmitter } from 'node:events';
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { type OtlpAnswer, type OtlpSignal, sendAnswer, validateAnswer } from './answer.ts';
import {
  ReceiverBindError,
  ReceiverClosedError,
  ReceiverOptionError,
  ReceiverTimeoutError,
} from './errors.ts';
import { ExportInbox, type ReceivedExport } from './inbox.ts';
import { loadOtlpLogsService, loadOtlpMetricsService } from './load.ts';
import type { ExportLogsServiceRequest, ExportMetricsServiceRequest } from './messages.ts';
import { createRequestEncodings, type RequestEncodings } from './request-encoding.ts';

export interface OtlpReceiverOptions {
  /** `host:port` to listen on. Default `'127.0.0.1:0'`: loopback, on an ephemeral port. */
  readonly address?: string;
  /** Serve TLS with this PEM certificate chain and private key. Default: plaintext (h2c). */
  readonly tls?: { readonly certChain: Buffer; readonly privateKey: Buffer };
  /** How long `nextMetrics()` / `nextLogs()` wait when not given a timeout, in ms. Default 5000. */
  readonly waitTimeoutMs?: number;
}

/** Events the receiver emits, once per Export call, after recording it. */
export interface OtlpReceiverEvents {
  metrics: [ReceivedExport<ExportMetricsServiceRequest>];
  logs: [ReceivedExport<ExportLogsServiceRequest>];
}

interface Settings {
  host: string;
  port: number;
  tls: OtlpReceiverOptions['tls'];
  waitTimeoutMs: number;
}

/** How long close() lets in-flight calls finish before it cuts connections. */
const shutdownGraceMs = 1000;

const addressPattern = /^(?<host>\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):(?<port>\d{1,5})$/;

function validatePositive(option: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) {
    throw new ReceiverOptionError(option, value, 'use a finite number of milliseconds > 0');
  }
  return value;
}

function validateOptions(options: OtlpReceiverOptions): Settings {
  const address = options.address ?? '127.0.0.1:0';
  const match = addressPattern.exec(address);
  const port = Number(match?.groups?.port);
  if (match === null || port > 65_535) {
    throw new ReceiverOptionError(
      'address',
      address,
      'use "host:port" with a port from 0 to 65535, e.g. "127.0.0.1:0" or "[::1]:4317"',
    );
  }
  if (
    options.tls !== undefined &&
    !(options.tls.certChain?.length > 0 && options.tls.privateKey?.length > 0)
  ) {
    throw new ReceiverOptionError(
      'tls',
      'missing certChain or privateKey',
      'pass both as non-empty PEM Buffers',
    );
  }
  return {
    host: match.groups!.host!,
    port,
    tls: options.tls,
    waitTimeoutMs: validatePositive('waitTimeoutMs', options.waitTimeoutMs ?? 5000),
  };
}

function credentials(tls: Settings['tls']): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(
    null,
    [{ cert_chain: tls.certChain, private_key: tls.privateKey }],
    false,
  );
}

function bind(server: Server, address: string, serverCredentials: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, serverCredentials, (error, port) => (error ? reject(error) : resolve(port)));
  });
}

/**
 * A real OTLP/gRPC server (grpc-js) implementing `MetricsService/Export` and `LogsService/Export`,
 * for end-to-end tests: it records every call, emits `'metrics'` / `'logs'` events, lets a test
 * await the next export, and answers as scripted (success by default).
 *
 * ```ts
 * await using receiver = await OtlpReceiver.start();
 * const exporter = new OTLPMetricExporter({ url: receiver.url });
 * // ...export...
 * const { request } = await receiver.nextMetrics();
 * ```
 */
export class OtlpReceiver extends EventEmitter<OtlpReceiverEvents> {
  readonly #server: Server;
  readonly #settings: Settings;
  readonly #metrics = new ExportInbox<ExportMetricsServiceRequest>();
  readonly #logs = new ExportInbox<ExportLogsServiceRequest>();
  #port = 0;
  #closing: Promise<void> | undefined;

  /** Validates the options, starts the server and resolves once it is listening. */
  static async start(options: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
    const receiver = new OtlpReceiver(validateOptions(options));
    await receiver.#listen();
    return receiver;
  }

  private constructor(settings: Settings) {
    super();
    this.#settings = settings;
    const encodings = createRequestEncodings();
    this.#server = new Server({ interceptors: [encodings.interceptor] });
    this.#server.addService(loadOtlpMetricsService(), {
      Export: this.#exportHandler('metrics', this.#metrics, encodings, (received) =>
        this.emit('metrics', received),
      ),
    });
    this.#server.addService(loadOtlpLogsService(), {
      Export: this.#exportHandler('logs', this.#logs, encodings, (received) => this.emit('logs', received)),
    });
  }

  /** `host:port` the server listens on, with the real port when 0 was asked for. */
  get address(): string {
    return `${this.#settings.host}:${this.#port}`;
  }

  /** The exporter URL: `http://host:port`, or `https://host:port` with TLS. */
  get url(): string {
    return `${this.#settings.tls === undefined ? 'http' : 'https'}://${this.address}`;
  }

  /** Every metrics Export call received so far, oldest first. */
  get metrics(): readonly ReceivedExport<ExportMetricsServiceRequest>[] {
    return this.#metrics.received;
  }

  /** Every logs Export call received so far, oldest first. */
  get logs(): readonly ReceivedExport<ExportLogsServiceRequest>[] {
    return this.#logs.received;
  }

  /**
   * The oldest metrics export not yet returned by this method, waiting for one if there is none.
   * Rejects with ReceiverTimeoutError after `timeoutMs` (default: the `waitTimeoutMs` option), or
   * with ReceiverClosedError when the receiver closes first.
   */
  nextMetrics(timeoutMs?: number): Promise<ReceivedExport<ExportMetricsServiceRequest>> {
    return this.#next('metrics', this.#metrics, timeoutMs);
  }

  /** Like {@link nextMetrics}, for logs exports. */
  nextLogs(timeoutMs?: number): Promise<ReceivedExport<ExportLogsServiceRequest>> {
    return this.#next('logs', this.#logs, timeoutMs);
  }

  /**
   * Answers the next `times` Export calls of `signal` with `answer` instead of success, after any
   * answers scripted before. Throws ReceiverOptionError for an invalid answer or count.
   */
  answerNext(signal: OtlpSignal, answer: OtlpAnswer, times = 1): void {
    if (!(Number.isSafeInteger(times) && times > 0)) {
      throw new ReceiverOptionError('times', times, 'use an integer >= 1');
    }
    const inbox = signal === 'metrics' ? this.#metrics : signal === 'logs' ? this.#logs : undefined;
    if (inbox === undefined) throw new ReceiverOptionError('signal', signal, 'use "metrics" or "logs"');
    inbox.script(validateAnswer(answer), times);
  }

  /**
   * Stops the server: lets in-flight calls finish for up to a second, then cuts connections.
   * Pending waits reject with ReceiverClosedError. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #listen(): Promise<void> {
    const requested = `${this.#settings.host}:${this.#settings.port}`;
    try {
      this.#port = await bind(this.#server, requested, credentials(this.#settings.tls));
    } catch (error) {
      this.#server.forceShutdown();
      throw new ReceiverBindError(requested, error);
    }
  }

  #next<Request>(
    signal: OtlpSignal,
    inbox: ExportInbox<Request>,
    timeoutMs = this.#settings.waitTimeoutMs,
  ): Promise<ReceivedExport<Request>> {
    validatePositive('timeoutMs', timeoutMs);
    return inbox.next(
      timeoutMs,
      () => new ReceiverTimeoutError(signal, this.address, timeoutMs, inbox.received.length),
    );
  }

  #exportHandler<Request>(
    signal: OtlpSignal,
    inbox: ExportInbox<Request>,
    encodings: RequestEncodings,
    announce: (received: ReceivedExport<Request>) => void,
  ) {
    return (call: ServerUnaryCall<Request, object>, callback: sendUnaryData<object>): void => {
      const answer = inbox.takeAnswer();
      const received: ReceivedExport<Request> = Object.freeze({
        request: call.request,
        metadata: call.metadata.toJSON(),
        requestEncoding: encodings.encodingOf(call.metadata),
        answer,
      });
      try {
        inbox.add(received);
        announce(received);
      } finally {
        sendAnswer(signal, answer, callback);
      }
    };
  }

  async #shutDown(): Promise<void> {
    const closed = new ReceiverClosedError(this.address);
    this.#metrics.close(closed);
    this.#logs.close(closed);
    await new Promise<void>((resolve) => {
      const forceTimer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, shutdownGraceMs);
      this.#server.tryShutdown(() => {
        clearTimeout(forceTimer);
        resolve();
      });
    });
  }
}
