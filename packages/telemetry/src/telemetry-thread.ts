import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { metrics as metricsApi } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { type IMetricReader, MeterProvider } from '@opentelemetry/sdk-metrics';
import { AdminServer } from './admin-server.ts';
import { defineCatalog } from './catalog.ts';
import { catalogProducer } from './catalog-producer.ts';
import { CollectionHub } from './collection-hub.ts';
import { CONTENT_TYPES, SDK_DISABLED_EXPOSITION } from './exposition-format.ts';
import { registerHttpServerMetrics } from './http-metrics.ts';
import type { LogFields, Logger, LogLevel } from './logger.ts';
import { MetricsEndpoint } from './metrics-endpoint.ts';
import { MetricsWriter } from './metrics-writer.ts';
import { readOtelEnvironment } from './otel-env.ts';
import { createOtlpReader, otlpEndpoint } from './otlp-push.ts';
import { pipelineCatalogs } from './pipeline-catalogs.ts';
import { startProcessMetrics } from './process-metrics.ts';
import { attributePairs } from './prometheus-serializer.ts';
import { registerCatalog } from './recorder.ts';
import { buildResource } from './resource.ts';
import { SeriesRegistry } from './series-registry.ts';
import { telemetryCatalog } from './telemetry-catalog.ts';
import {
  type ControlMessage,
  type ControlRequest,
  type TelemetryThreadInit,
  threadError,
} from './telemetry-protocol.ts';
import { WorkerState } from './worker-state.ts';

/**
 * The telemetry thread: the process's one MeterProvider with its Prometheus reader and OTLP push
 * reader, the admin server (/metrics, /healthz, /readyz) and the serializer. Started by
 * `startTelemetry` on the data thread (telemetry.ts); it reads the data thread's metrics from
 * shared memory (collection-hub.ts) and never runs anything on the data thread but the snapshot.
 */

if (parentPort === null)
  throw new Error('telemetry-thread.ts runs as a worker thread started by startTelemetry');
const port = parentPort;

const post = (message: ControlMessage) => port.postMessage(message);

/**
 * Nice value of this thread: under contention the kernel gives the data thread (nice 0) about ten
 * times this thread's share of a core, so a 100,000-series scrape yields to traffic instead of
 * delaying it. On an idle core it changes nothing.
 */
const TELEMETRY_THREAD_NICE = 10;

/**
 * Lowers this thread's scheduling priority. Linux keeps a nice value per thread, addressed by the
 * thread id (/proc/thread-self names it); raising one's own nice value needs no privilege.
 * Elsewhere the thread keeps the process's priority.
 */
function yieldToDataThread(logger: Logger): void {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').at(-1));
    os.setPriority(threadId, TELEMETRY_THREAD_NICE);
  } catch (error) {
    logger.debug('the telemetry thread keeps the process priority', {
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

/** Log lines go to the data thread's logger, so that the worker's level, sink and name apply. */
function forwardingLogger(bindings: LogFields = {}): Logger {
  const method = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    const all = { ...bindings, ...fields };
    try {
      post({ type: 'log', level, msg, fields: all });
    } catch {
      // A field the structured clone refuses (a function, a socket): send what JSON keeps of it.
      const plain = JSON.parse(
        JSON.stringify(all, (_key, value) => (value instanceof Error ? value.message : value)),
      );
      post({ type: 'log', level, msg, fields: plain });
    }
  };
  return {
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
    child: (more) => forwardingLogger({ ...bindings, ...more }),
  };
}

async function start(init: TelemetryThreadInit, logger: Logger) {
  yieldToDataThread(logger);
  const otelEnv = readOtelEnvironment(init.env);
  const { settings } = init;
  const catalogs = pipelineCatalogs(defineCatalog(init.catalog), init.httpRoutes);
  const local = new MetricsWriter();
  const handles = registerCatalog(local, telemetryCatalog);
  const http = registerHttpServerMetrics(local, catalogs.http, catalogs.routes);
  const hub = new CollectionHub(new SeriesRegistry(catalogs.instruments), local, init.collectTimeoutMs);
  hub.addWriter(init.writerPort);
  const state = new WorkerState(init.state);

  let provider: MeterProvider | undefined;
  let metrics: ConstructorParameters<typeof AdminServer>[0]['metrics'];
  let pushEndpoint: string | undefined;
  let scrape: (format: 'text' | 'openmetrics') => Promise<string>;
  if (otelEnv.sdkDisabled) {
    logger.warn('OTEL_SDK_DISABLED=true: metrics are not recorded; /metrics serves an empty exposition');
    metrics = {
      serve: async (request, response) => {
        response.writeHead(200, { 'content-type': CONTENT_TYPES.text });
        response.end(request.method === 'HEAD' ? undefined : SDK_DISABLED_EXPOSITION);
      },
    };
    scrape = async () => SDK_DISABLED_EXPOSITION;
  } else {
    if (settings.processMetrics) startProcessMetrics(local);
    const resource = buildResource({
      serviceName: init.serviceName,
      serviceVersion: init.serviceVersion,
      otelEnv,
      env: init.env,
    });
    const sdkReader = new PrometheusExporter({ preventServerStart: true });
    const readers: IMetricReader[] = [sdkReader];
    const scope = { name: `@switchyard/${init.serviceName}`, version: init.serviceVersion };
    const otlpReader = createOtlpReader({
      config: settings.otlp,
      otelEnv,
      handles: () => handles,
      logger,
      producer: (temporality) => catalogProducer({ hub, scope, temporality }),
    });
    if (otlpReader !== undefined) {
      readers.push(otlpReader);
      pushEndpoint = otlpEndpoint(settings.otlp, otelEnv);
      logger.info('pushing metrics over OTLP gRPC', { endpoint: pushEndpoint });
    }
    provider = new MeterProvider({ resource, readers });
    // Libraries instrumented with @opentelemetry/api on this thread record into the same provider.
    metricsApi.setGlobalMeterProvider(provider);
    const attributes = resource.attributes;
    const endpoint = new MetricsEndpoint({
      hub,
      sdkReader,
      targetInfo: Object.keys(attributes).length === 0 ? undefined : attributePairs(attributes),
      handles,
      logger,
    });
    metrics = endpoint;
    scrape = (format) => endpoint.text(format);
  }

  const admin = new AdminServer({
    host: settings.admin.host,
    port: settings.admin.port,
    bearerToken: settings.admin.bearerToken,
    metrics,
    state,
    http,
    logger,
  });
  const address = await admin.listen();
  logger.info('admin server listening', { address: address.address, port: address.port });
  post({ type: 'ready', address, otlpEndpoint: pushEndpoint });

  const shutdown = async () => {
    state.markStopping();
    try {
      // MeterProvider.shutdown() flushes the periodic reader: the last OTLP export goes out here,
      // with a last snapshot of the data thread.
      await provider?.shutdown();
    } catch (error) {
      logger.warn('metrics provider shutdown failed', { error });
    }
    await admin.close();
    if (provider !== undefined) metricsApi.disable();
    hub.close();
  };
  port.on('message', (request: ControlRequest) => {
    if (request.type === 'add-writer') {
      hub.addWriter(request.port);
      return;
    }
    const work =
      request.type === 'scrape'
        ? scrape(request.format).then((text) => ({ text }))
        : Promise.resolve(request.type === 'flush' ? provider?.forceFlush() : shutdown()).then(() => ({}));
    work.then(
      (result) => post({ type: 'reply', id: request.id, ...result }),
      (error: unknown) => post({ type: 'reply', id: request.id, error: threadError(error) }),
    );
  });
}

const logger = forwardingLogger();
start(workerData as TelemetryThreadInit, logger).catch((error: unknown) => {
  post({ type: 'failed', error: threadError(error) });
});
