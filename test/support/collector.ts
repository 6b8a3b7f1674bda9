import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedBinary } from './cached-binary.ts';
import { freePort } from './free-port.ts';
import { answersOk, type ServerProcess, spawnServer, waitUntilReady } from './server-process.ts';

/** One log record as the Collector's file exporter wrote it. */
export interface ExportedLogRecord {
  readonly body: string;
  /** The `service.name` resource attribute the sender set. */
  readonly serviceName: string | undefined;
}

export interface RunningCollector {
  /** Where workers push OTLP gRPC: `http://127.0.0.1:<port>`. */
  readonly otlpEndpoint: string;
  /** The Prometheus exporter's `host:port`, for the push path's scrape job. */
  readonly prometheusExporterAddress: string;
  /** Stops the Collector (SIGTERM: it flushes its pipelines, then exits); the ports stay ours. */
  stop(): Promise<void>;
  /** Starts it again on the same ports, with a fresh output file, and resolves once it is ready. */
  restart(): Promise<void>;
  /** The number of lines (one per export) the file exporter has written, over every run. */
  exportLines(): Promise<number>;
  /** Every log record the file exporter has written, over every run, in order. */
  logRecords(): Promise<ExportedLogRecord[]>;
  /** Stops the Collector and removes its files. */
  close(): Promise<void>;
}

interface CollectorPorts {
  readonly otlp: number;
  readonly prometheus: number;
  readonly health: number;
}

const readyTimeoutMs = 20_000;

/**
 * Starts the Collector that scripts/build-collector.sh built (test/tools/otelcol) on loopback, with
 * `deployedConfig` (the deploy/ otlp-push overlay's collector.yaml) adapted to a test:
 * - every endpoint on 127.0.0.1 and a free port;
 * - the Prometheus exporter at its default settings (the deployed config sets only defaults:
 *   metric_expiration 5m, resource_to_telemetry_conversion off);
 * - the logs pipeline's debug exporter replaced by the file exporter, one JSON line per export, a
 *   new file per run (the exporter truncates its file when it starts);
 * - its own telemetry off (it would take port 8888) and its logs as JSON on stderr.
 */
export async function startCollector(deployedConfig: Record<string, unknown>): Promise<RunningCollector> {
  const binary = cachedBinary('build-collector.sh');
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-otelcol-'));
  const ports: CollectorPorts = {
    otlp: await freePort(),
    prometheus: await freePort(),
    health: await freePort(),
  };
  const logFiles: string[] = [];
  let server: ServerProcess | undefined;

  const start = async (): Promise<void> => {
    const logsFile = join(dir, `logs-${logFiles.length + 1}.jsonl`);
    const configFile = join(dir, `collector-${logFiles.length + 1}.yaml`);
    logFiles.push(logsFile);
    // JSON is valid YAML.
    await writeFile(configFile, JSON.stringify(testConfig(deployedConfig, ports, logsFile)));
    server = spawnServer(binary, [`--config=file:${configFile}`], { scratchDir: dir });
    await waitUntilReady(
      server,
      'otelcol',
      () => answersOk(`http://127.0.0.1:${ports.health}/`),
      readyTimeoutMs,
    );
  };
  const readLines = async (): Promise<string[]> => {
    const texts = await Promise.all(logFiles.map((file) => readFile(file, 'utf8').catch(() => '')));
    return texts.flatMap((text) => text.split('\n')).filter((line) => line !== '');
  };

  await start();
  return {
    otlpEndpoint: `http://127.0.0.1:${ports.otlp}`,
    prometheusExporterAddress: `127.0.0.1:${ports.prometheus}`,
    stop: async () => server?.stop(),
    restart: async () => {
      await server?.stop();
      await start();
    },
    exportLines: async () => (await readLines()).length,
    logRecords: async () => (await readLines()).flatMap(recordsOfExport),
    close: async () => {
      await server?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

type Config = Record<string, Record<string, unknown>>;

function section(config: Config, path: string): Record<string, unknown> {
  let node: unknown = config;
  for (const key of path.split('.')) {
    node = (node as Record<string, unknown> | undefined)?.[key];
  }
  if (typeof node !== 'object' || node === null) {
    throw new Error(`the deployed Collector config has no ${path}: update test/support/collector.ts with it`);
  }
  return node as Record<string, unknown>;
}

function testConfig(deployed: Record<string, unknown>, ports: CollectorPorts, logsFile: string): Config {
  const config = structuredClone(deployed) as Config;
  section(config, 'receivers.otlp.protocols.grpc').endpoint = `127.0.0.1:${ports.otlp}`;
  section(config, 'extensions.health_check').endpoint = `127.0.0.1:${ports.health}`;
  const exporters = section(config, 'exporters');
  exporters.prometheus = { endpoint: `127.0.0.1:${ports.prometheus}` };
  exporters.file = { path: logsFile };
  const logs = section(config, 'service.pipelines.logs');
  logs.exporters = ['file'];
  section(config, 'service').telemetry = { metrics: { level: 'none' }, logs: { encoding: 'json' } };
  return config;
}

interface JsonAnyValue {
  stringValue?: string;
}

interface JsonLogsExport {
  resourceLogs?: Array<{
    resource?: { attributes?: Array<{ key: string; value?: JsonAnyValue }> };
    scopeLogs?: Array<{ logRecords?: Array<{ body?: JsonAnyValue }> }>;
  }>;
}

/** The records of one line of the file exporter (an ExportLogsServiceRequest in OTLP JSON). */
function recordsOfExport(line: string): ExportedLogRecord[] {
  const request = JSON.parse(line) as JsonLogsExport;
  return (request.resourceLogs ?? []).flatMap((resourceLogs) => {
    const serviceName = resourceLogs.resource?.attributes?.find((a) => a.key === 'service.name')?.value
      ?.stringValue;
    return (resourceLogs.scopeLogs ?? []).flatMap((scopeLogs) =>
      (scopeLogs.logRecords ?? []).map((record) => ({ body: record.body?.stringValue ?? '', serviceName })),
    );
  });
}
