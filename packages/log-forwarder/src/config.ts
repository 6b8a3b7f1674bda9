import {
  byteSize,
  durationMs,
  loadConfig,
  telemetrySettingsSchema,
  workerConfigSource,
} from '@switchyard/telemetry';
import { z } from 'zod';

/** Fixed, documented defaults (README): admin on 9403, the demo socket in /tmp/switchyard. */
export const LOG_FORWARDER_ADMIN_PORT = 9403;
export const DEFAULT_SOCKET_PATH = '/tmp/switchyard/log-forwarder.sock';

export const logForwarderConfigSchema = z.strictObject({
  telemetry: telemetrySettingsSchema(LOG_FORWARDER_ADMIN_PORT).prefault({}),
  socket: z
    .strictObject({
      path: z
        .string()
        .min(1)
        .max(107, 'a Unix socket path is at most 107 bytes on Linux')
        .default(DEFAULT_SOCKET_PATH),
      /** File mode of the socket, octal: who may connect. */
      mode: z
        .string()
        .regex(/^0?[0-7]{3}$/, 'expected an octal file mode such as "660"')
        .default('660'),
      maxFrameBytes: byteSize.pipe(z.int().min(16).max(0xffffff)).default(1024 * 1024),
    })
    .prefault({}),
  buffer: z
    .strictObject({
      /**
       * The byte limit bounds memory; this one, the per-batch overhead. Default 100, as specified.
       * Senders that batch one record at a time fill 100 batches with 100 records: for them raise it
       * (measured end to end with single-record batches: ~60k records/s at 100, ~150k at 10,000).
       */
      maxBatches: z.int().min(1).max(1_000_000).default(100),
      maxBytes: byteSize.pipe(z.int().min(1024)).default(8 * 1024 * 1024),
    })
    .prefault({}),
  collector: z
    .strictObject({
      /** `http://host:4317` (plaintext) or `https://...`; else OTEL_EXPORTER_OTLP_LOGS_ENDPOINT / _ENDPOINT. */
      endpoint: z.string().min(1).optional(),
      headers: z.record(z.string(), z.string()).optional(),
      compression: z.enum(['gzip', 'none']).optional(),
      timeoutMs: durationMs.optional(),
      insecure: z.boolean().optional(),
      caFile: z.string().min(1).optional(),
      certFile: z.string().min(1).optional(),
      keyFile: z.string().min(1).optional(),
      /**
       * An export is retried, with full-jitter exponential backoff from initialBackoffMs up to
       * maxBackoffMs, until it is accepted, fails for good, or maxElapsedMs have passed since it
       * began; its records are then dropped (forward_failed). The gRPC channel reconnects on the
       * same backoff, and attempts fail at once until it has: keep maxElapsedMs above about
       * 2.2 x maxBackoffMs, or a batch sent just as the Collector comes back can be dropped.
       */
      retry: z
        .strictObject({
          /**
           * Deprecated, unset by default (it was 5): a cap on attempts per export. Attempts that
           * fail at once while the channel waits to reconnect count too, so five were spent within
           * 1.5 s and a batch sent after a Collector restart was dropped. Honored when set, with a
           * warning at startup; bound retries with maxElapsedMs instead.
           */
          maxAttempts: z.int().min(1).max(100).optional(),
          initialBackoffMs: durationMs.default(100),
          maxBackoffMs: durationMs.default(5_000),
          maxElapsedMs: durationMs.default(30_000),
        })
        .prefault({}),
      /**
       * Intake batches merged into one export, at most. Default 10,000 (was 64): an export takes
       * only what is buffered, so the limit matters under backlog, where fewer, larger exports
       * forward more (measured end to end, batches of 100 records: 0.87M records/s then, 1.1M now;
       * of 10 records: 0.29M then, 0.64M now). maxExportBytes then bounds an export.
       */
      maxExportBatches: z.int().min(1).max(10_000).default(10_000),
      /** Default 4 MiB, the Collector's default gRPC max_recv_msg_size_mib: a larger export would be refused. */
      maxExportBytes: byteSize.pipe(z.int().min(1024)).default(4 * 1024 * 1024),
    })
    .prefault({}),
  shutdownGraceMs: durationMs.default(10_000),
  demo: z
    .strictObject({
      /** Run a local OTLP sink as the collector (the built-in demo). */
      collector: z.boolean().default(false),
      traffic: z
        .strictObject({
          enabled: z.boolean().default(false),
          batchesPerSecond: z.number().positive().max(10_000).default(20),
          recordsPerBatch: z.int().min(1).max(10_000).default(50),
        })
        .prefault({}),
    })
    .prefault({}),
});

export type LogForwarderConfig = z.infer<typeof logForwarderConfigSchema>;

/** The built-in config `npm start` runs: a local sink as the collector and synthetic senders. */
export const DEMO_CONFIG = Object.freeze({ demo: { collector: true, traffic: { enabled: true } } });

/**
 * Reads the config: `--config <file>` (or SWITCHYARD_LOG_FORWARDER_CONFIG) with
 * SWITCHYARD_LOG_FORWARDER_* overrides; without a file, the built-in demo config.
 * SWITCHYARD_DEMO_TRAFFIC=0 turns the demo's synthetic senders off.
 */
export function readLogForwarderConfig(argv: readonly string[], env: NodeJS.ProcessEnv): LogForwarderConfig {
  const { file, overrides } = workerConfigSource(
    'SWITCHYARD_LOG_FORWARDER_',
    argv,
    env,
    'DEMO__TRAFFIC__ENABLED',
  );
  return loadConfig(logForwarderConfigSchema, {
    file,
    env: overrides,
    envPrefix: 'SWITCHYARD_LOG_FORWARDER_',
    defaults: file === undefined ? DEMO_CONFIG : undefined,
  });
}
