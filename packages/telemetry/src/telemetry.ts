import type { AddressInfo } from 'node:net';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { Catalog, CatalogDeclaration } from './catalog.ts';
import { SwitchyardError } from './errors.ts';
import type { ExpositionFormat } from './exposition-format.ts';
import { type HttpServerHandles, type RouteClassifier, registerHttpServerMetrics } from './http-metrics.ts';
import type { Logger } from './logger.ts';
import { MetricsWriter } from './metrics-writer.ts';
import { readOtelEnvironment } from './otel-env.ts';
import { pipelineCatalogs } from './pipeline-catalogs.ts';
import { type Sampler, startRuntimeMetrics } from './process-metrics.ts';
import { type CatalogHandles, registerCatalog } from './recorder.ts';
import type {
  ControlMessage,
  ControlRequest,
  TelemetrySettings,
  TelemetryThreadInit,
  ThreadError,
} from './telemetry-protocol.ts';
import { type Readiness, WorkerState } from './worker-state.ts';

export type { TelemetrySettings } from './telemetry-protocol.ts';

/**
 * `startTelemetry`, on the data thread: records the worker's catalog into this thread's cells and
 * starts the telemetry thread (telemetry-thread.ts), which owns the MeterProvider, both readers,
 * the admin server and the serializer. What stays here is a plain store per event and, per
 * collection, one snapshot of this thread's cells taken between two events (metrics-writer.ts).
 */

/** How long a collection waits for this thread's snapshot before /metrics answers 503. */
const COLLECT_TIMEOUT_MS = 5_000;
/** How long shutdown waits for the telemetry thread's last OTLP export and goodbye. */
const SHUTDOWN_TIMEOUT_MS = 35_000;

export interface TelemetryOptions<D extends CatalogDeclaration> {
  /** `service.name` unless OTEL_SERVICE_NAME overrides it, e.g. `switchyard-proxy`. */
  readonly serviceName: string;
  readonly serviceVersion: string;
  /** The worker's catalog; its instruments are recorded on this thread. */
  readonly catalog: Catalog<D>;
  readonly settings: TelemetrySettings;
  readonly logger: Logger;
  /** Route templates of the worker's own HTTP surfaces (the admin server's are added). */
  readonly httpRoutes?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

/** The worker's side of readiness; /readyz and /healthz answer on the telemetry thread. */
export interface AdminControl {
  /** `true` once the worker serves traffic; `false` again from the start of shutdown. */
  setReady(ready: boolean): void;
  /** Readiness turns 503 for good: the first step of graceful shutdown. */
  markStopping(): void;
  readonly readiness: Readiness;
}

export interface Telemetry<D extends CatalogDeclaration> {
  /** One handle per catalog key: cells and series of the hot-path idiom. */
  readonly metrics: CatalogHandles<D>;
  /** HTTP server metrics for the worker's own HTTP surfaces (`instrumentHttpServer`). */
  readonly http: { readonly handles: HttpServerHandles; readonly classify: RouteClassifier };
  readonly admin: AdminControl;
  /** Where the admin server listens. */
  readonly adminAddress: AddressInfo;
  /** The OTLP endpoint pushed to, when push is on. */
  readonly otlpEndpoint: string | undefined;
  /** The exposition as /metrics serves it (text 0.0.4 unless asked otherwise). */
  scrape(format?: ExpositionFormat): Promise<string>;
  /** Pushes what has been recorded now (OTLP), without waiting for the interval. */
  forceFlush(): Promise<void>;
  /**
   * A port for another thread's `MetricsWriter.serve`: its cells are collected with this thread's
   * and summed series by series (several data threads recording one catalog).
   */
  addWriter(): MessagePort;
  /** Flushes the last OTLP export, shuts the provider down and closes the admin server. */
  shutdown(): Promise<void>;
}

/** Whether a Telemetry is running in this process: one MeterProvider per process. */
let liveTelemetry = false;

/**
 * Records the worker's catalog, the HTTP metrics of its routes and the runtime metrics on this
 * thread, then starts the telemetry thread and resolves once its admin server listens. Config
 * problems (a bad OTEL_* variable, clashing names, an admin address in use) reject with the
 * SwitchyardError that names them.
 */
export async function startTelemetry<D extends CatalogDeclaration>(
  options: TelemetryOptions<D>,
): Promise<Telemetry<D>> {
  if (liveTelemetry) {
    throw new SwitchyardError(
      'SWY_ERR_TELEMETRY_RUNNING',
      'startTelemetry was called twice: a process has one MeterProvider; share the first Telemetry object (or shut it down first)',
    );
  }
  liveTelemetry = true;
  try {
    return await buildTelemetry(options);
  } catch (error) {
    liveTelemetry = false;
    throw error;
  }
}

async function buildTelemetry<D extends CatalogDeclaration>(
  options: TelemetryOptions<D>,
): Promise<Telemetry<D>> {
  const env = options.env ?? process.env;
  const otelEnv = readOtelEnvironment(env);
  const catalogs = pipelineCatalogs(options.catalog, options.httpRoutes ?? []);

  const writer = new MetricsWriter();
  const metrics = registerCatalog(writer, options.catalog);
  const http = registerHttpServerMetrics(writer, catalogs.http, catalogs.routes);
  let runtime: Sampler | undefined;
  if (options.settings.processMetrics && !otelEnv.sdkDisabled) runtime = startRuntimeMetrics(writer);
  const state = new WorkerState();
  const heartbeat = state.startHeartbeat();

  const channel = new MessageChannel();
  writer.serve(channel.port1);
  const init: TelemetryThreadInit = {
    serviceName: options.serviceName,
    serviceVersion: options.serviceVersion,
    catalog: options.catalog.declaration,
    httpRoutes: options.httpRoutes ?? [],
    settings: options.settings,
    env: { ...env },
    state: state.buffer,
    writerPort: channel.port2,
    collectTimeoutMs: COLLECT_TIMEOUT_MS,
  };
  const thread = new TelemetryThread(
    new Worker(new URL('./telemetry-thread.ts', import.meta.url), {
      workerData: init,
      transferList: [channel.port2],
      // The OTLP exporter reads OTEL_EXPORTER_OTLP_* from process.env: give the thread this env.
      env: init.env,
    }),
    options.logger,
  );
  /** Stops what this thread started for the pipeline, the telemetry thread last. */
  const release = async () => {
    heartbeat.stop();
    runtime?.stop();
    channel.port1.close();
    await thread.terminate();
  };
  let ready: Extract<ControlMessage, { type: 'ready' }>;
  try {
    ready = await thread.ready;
  } catch (error) {
    await release();
    throw error;
  }

  let stopped: Promise<void> | undefined;
  return {
    metrics,
    http,
    admin: {
      setReady: (ready) => state.setReady(ready),
      markStopping: () => state.markStopping(),
      get readiness() {
        return state.readiness;
      },
    },
    adminAddress: ready.address,
    otlpEndpoint: ready.otlpEndpoint,
    scrape: async (format = 'text') => (await thread.request({ type: 'scrape', format })) ?? '',
    forceFlush: async () => {
      await thread.request({ type: 'flush' });
    },
    addWriter: () => {
      const extra = new MessageChannel();
      thread.send({ type: 'add-writer', port: extra.port2 }, [extra.port2]);
      return extra.port1;
    },
    shutdown: () => {
      stopped ??= (async () => {
        state.markStopping();
        try {
          await thread.request({ type: 'shutdown' }, SHUTDOWN_TIMEOUT_MS);
        } catch (error) {
          options.logger.warn('the telemetry thread did not shut down cleanly', { error });
        }
        await release();
        liveTelemetry = false;
      })();
      return stopped;
    },
  };
}

/** The data thread's handle on the telemetry thread: startup, requests, forwarded logs. */
class TelemetryThread {
  readonly ready: Promise<Extract<ControlMessage, { type: 'ready' }>>;
  readonly #worker: Worker;
  readonly #logger: Logger;
  readonly #pending = new Map<
    number,
    { resolve: (text: string | undefined) => void; reject: (error: Error) => void }
  >();
  #nextId = 1;
  #exited = false;

  constructor(worker: Worker, logger: Logger) {
    this.#worker = worker;
    this.#logger = logger;
    this.ready = new Promise((resolve, reject) => {
      worker.on('message', (message: ControlMessage) => {
        if (message.type === 'ready') resolve(message);
        else if (message.type === 'failed') reject(rebuildError(message.error));
        else this.#receive(message);
      });
      worker.on('error', (error) => {
        reject(error);
        logger.error('the telemetry thread failed: /metrics, /healthz and /readyz are gone', { error });
      });
      worker.on('exit', (code) => {
        this.#exited = true;
        reject(
          new SwitchyardError(
            'SWY_ERR_TELEMETRY_THREAD',
            `the telemetry thread exited (code ${code}) before it was ready`,
          ),
        );
        for (const { reject: fail } of this.#pending.values()) fail(new Error('the telemetry thread exited'));
        this.#pending.clear();
      });
    });
    // Like the admin server it runs, the thread keeps the process alive until shutdown.
  }

  send(request: ControlRequest, transfer: readonly MessagePort[] = []): void {
    this.#worker.postMessage(request, [...transfer]);
  }

  /** Sends a request and resolves with the reply's text (scrape) once it comes. */
  request(
    request: { type: 'scrape'; format: ExpositionFormat } | { type: 'flush' } | { type: 'shutdown' },
    timeoutMs?: number,
  ): Promise<string | undefined> {
    if (this.#exited) return Promise.reject(new Error('the telemetry thread has exited'));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#pending.delete(id);
          reject(new Error(`the telemetry thread did not answer ${request.type} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.#pending.set(id, {
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.send({ ...request, id });
    });
  }

  async terminate(): Promise<void> {
    if (!this.#exited) await this.#worker.terminate();
  }

  #receive(message: ControlMessage): void {
    if (message.type === 'log') {
      this.#logger[message.level](message.msg, message.fields);
      return;
    }
    if (message.type !== 'reply') return;
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    if (message.error !== undefined) pending.reject(rebuildError(message.error));
    else pending.resolve(message.text);
  }
}

/** A SwitchyardError keeps its code across the thread boundary (runWorkerMain exits 2 on it). */
function rebuildError(error: ThreadError): Error {
  if (error.code?.startsWith('SWY_ERR_')) return new SwitchyardError(error.code, error.message);
  return Object.assign(new Error(error.message), { name: error.name });
}
