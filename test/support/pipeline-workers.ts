import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningCollector } from './collector.ts';
import { type Family, parseExposition } from './exposition.ts';
import { type Overlay, type PodIdentity, podSpec } from './pod-spec.ts';
import { spawnWorker, type WorkerProcess } from './worker-process.ts';

/**
 * How Prometheus gets a worker's metrics: `pull` scrapes its /metrics (the deploy/ `example`
 * overlay, a ServiceMonitor per worker), `push` has it send OTLP to the Collector, whose Prometheus
 * exporter is scraped (the `otlp-push` overlay).
 */
export type MetricsPath = 'pull' | 'push';

const overlayOf: Record<MetricsPath, Overlay> = { pull: 'example', push: 'otlp-push' };

/** The in-cluster Collector address the otlp-push overlay gives the workers. */
const deployedCollectorEndpoint = 'http://switchyard-otel-collector:4317';

/** One worker process of the pipeline, standing for one pod. */
export interface PipelineWorker {
  readonly path: MetricsPath;
  readonly pod: PodIdentity;
  readonly process: WorkerProcess;
  /** `127.0.0.1:<port>` of its admin server (/metrics, /healthz, /readyz). */
  readonly adminAddress: string;
  /**
   * The other pods of its workload on the same path, of the same kind (the relay's StatefulSet
   * has two replicas, meshed): started with it, scraped like it, and stopped by its `stop()`.
   * Empty for a workload of one pod.
   */
  readonly otherReplicas: readonly PipelineWorker[];
  /** Scrapes its /metrics directly (both paths serve it; only the pull path's is scraped by Prometheus). */
  metrics(): Promise<Map<string, Family>>;
  /** SIGTERM, then resolves with how it exited; frees what the test started for it. Idempotent. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface PipelineContext {
  readonly collector: RunningCollector;
  /** The test's scrape interval; push workers export at the same interval, as the pods do. */
  readonly scrapeIntervalSeconds: number;
}

/**
 * A kind of worker in the pipeline. The test starts each kind twice, once per metrics path, and
 * compares the two paths kind by kind. A kind lives here (or in a file of its own, as the relay in
 * pipeline-relay.ts), is listed in the test's `kinds`, and has a test of its own traffic.
 */
export interface PipelineWorkerKind<W extends PipelineWorker = PipelineWorker> {
  /** The worker's name in deploy/ (`switchyard-<worker>`) and its entrypoint argument. */
  readonly worker: string;
  /** The `job` label of its series: the Service name, as its ServiceMonitor sets it. */
  readonly job: string;
  start(path: MetricsPath, context: PipelineContext): Promise<W>;
}

interface StartedProcess {
  readonly process: WorkerProcess;
  readonly pod: PodIdentity;
  readonly adminAddress: string;
}

export interface PodOptions {
  /** `proxy`, `log-forwarder`, `relay`: its directory under packages/ and its workload in deploy/. */
  readonly worker: string;
  readonly path: MetricsPath;
  readonly context: PipelineContext;
  /** Rewrites the overlay's config for loopback: listeners on 127.0.0.1, files in `dir`. */
  adapt(config: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** The log line (`msg`) the worker writes once it serves. */
  readonly readyLine: string;
  /** A directory of the test's where the config file is written. */
  readonly dir: string;
  /** The pod's name; default `switchyard-<worker>-<path>`. */
  readonly podName?: string;
}

/**
 * Starts `main.ts` as the pod of `worker` on `path` would run it: the overlay's config file after
 * `adapt` (loopback addresses, local files), and the overlay's env with the Collector's address
 * and the export interval scaled to the test. Resolves once the worker logged `readyLine`.
 */
export async function startPod(options: PodOptions): Promise<StartedProcess> {
  const { worker, path, context } = options;
  const pod = {
    name: options.podName ?? `switchyard-${worker}-${path}`,
    uid: randomUUID(),
    namespace: 'switchyard',
  };
  const spec = podSpec(overlayOf[path], worker, pod);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(spec.env)) {
    env[name] = value === deployedCollectorEndpoint ? context.collector.otlpEndpoint : value;
  }
  // The pods export every 30 s, their scrape interval; the test scrapes and exports more often.
  if (env.OTEL_METRIC_EXPORT_INTERVAL !== undefined) {
    env.OTEL_METRIC_EXPORT_INTERVAL = String(context.scrapeIntervalSeconds * 1000);
  }
  const config = await options.adapt(structuredClone(spec.config));
  const telemetry = (config.telemetry ?? {}) as { admin?: Record<string, unknown> };
  config.telemetry = { ...telemetry, admin: { ...telemetry.admin, host: '127.0.0.1', port: 0 } };
  const file = join(options.dir, `${pod.name}.json`);
  await writeFile(file, JSON.stringify(config));
  const main = fileURLToPath(new URL(`../../packages/${worker}/src/main.ts`, import.meta.url));
  const process = spawnWorker(main, env, ['--config', file]);
  const admin = await process.waitForLog((line) => line.msg === 'admin server listening');
  await process.waitForLog((line) => line.msg === options.readyLine);
  return { process, pod, adminAddress: `127.0.0.1:${admin.port}` };
}

/**
 * The test's handle on a started pod. `cleanup` runs once it has exited; `otherReplicas` are
 * stopped by the cleanup that starts them.
 */
export function pipelineWorker(
  path: MetricsPath,
  started: StartedProcess,
  cleanup: () => Promise<void>,
  otherReplicas: readonly PipelineWorker[] = [],
): PipelineWorker {
  let stopped: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  return {
    path,
    pod: started.pod,
    process: started.process,
    adminAddress: started.adminAddress,
    otherReplicas,
    metrics: async () =>
      parseExposition(await (await fetch(`http://${started.adminAddress}/metrics`)).text()),
    stop: () => {
      stopped ??= started.process.stop('SIGTERM').then(async (exit) => {
        await cleanup();
        return exit;
      });
      return stopped;
    },
  };
}

/** The worker and its other replicas, in order (the relay's StatefulSet ordinals). */
export function podsOf<W extends PipelineWorker>(worker: W): W[] {
  return [worker, ...(worker.otherReplicas as readonly W[])];
}

/** An echo server standing in for one upstream; counts the connections that carried data. */
export interface EchoBackend {
  readonly address: string;
  dataConnections(): number;
  close(): Promise<void>;
}

async function startEchoBackend(): Promise<EchoBackend> {
  let dataConnections = 0;
  const server: Server = createServer((socket) => {
    socket.on('error', () => {});
    // Health checks connect and close without a byte: only connections with data are traffic.
    socket.once('data', () => {
      dataConnections += 1;
    });
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    dataConnections: () => dataConnections,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface ProxyPipelineWorker extends PipelineWorker {
  /** The port of each listener, by its configured name. */
  readonly listenPorts: ReadonlyMap<string, number>;
  /** The echo backend of each upstream, by its configured name. */
  readonly backends: ReadonlyMap<string, EchoBackend>;
}

interface ProxyConfig {
  listeners: Array<{ name: string; listen: string }>;
  pools: Array<{ upstreams: Array<{ name: string; address: string }> }>;
}

/** The proxy: the overlay's listeners on 127.0.0.1, each upstream an echo backend of its own. */
export const proxyKind: PipelineWorkerKind<ProxyPipelineWorker> = {
  worker: 'proxy',
  job: 'switchyard-proxy',
  async start(path, context) {
    const dir = await mkdtemp(join(tmpdir(), 'switchyard-pipeline-proxy-'));
    const backends = new Map<string, EchoBackend>();
    const adapt = async (raw: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const config = raw as unknown as ProxyConfig;
      for (const listener of config.listeners) listener.listen = '127.0.0.1:0';
      for (const upstream of config.pools.flatMap((pool) => pool.upstreams)) {
        const backend = await startEchoBackend();
        backends.set(upstream.name, backend);
        upstream.address = backend.address;
      }
      return raw;
    };
    const started = await startPod({
      worker: 'proxy',
      path,
      context,
      adapt,
      readyLine: 'proxy serving',
      dir,
    });
    const listenPorts = new Map(
      started.process.logs
        .filter((line) => line.msg === 'proxy listener ready')
        .map((line) => [String(line.listener), Number(line.port)] as const),
    );
    const cleanup = async (): Promise<void> => {
      for (const backend of backends.values()) await backend.close();
      await rm(dir, { recursive: true, force: true });
    };
    return { ...pipelineWorker(path, started, cleanup), listenPorts, backends };
  },
};

export interface LogForwarderPipelineWorker extends PipelineWorker {
  readonly socketPath: string;
}

/** The log forwarder: its intake socket in a temporary directory, forwarding to the test's Collector. */
export const logForwarderKind: PipelineWorkerKind<LogForwarderPipelineWorker> = {
  worker: 'log-forwarder',
  job: 'switchyard-log-forwarder',
  async start(path, context) {
    const dir = await mkdtemp(join(tmpdir(), 'switchyard-pipeline-lf-'));
    const socketPath = join(dir, 'logs.sock');
    const adapt = async (config: Record<string, unknown>): Promise<Record<string, unknown>> => ({
      ...config,
      socket: { ...(config.socket as object), path: socketPath },
      collector: { ...(config.collector as object), endpoint: context.collector.otlpEndpoint },
    });
    const started = await startPod({
      worker: 'log-forwarder',
      path,
      context,
      adapt,
      readyLine: 'log forwarder serving',
      dir,
    });
    const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
    return { ...pipelineWorker(path, started, cleanup), socketPath };
  },
};
