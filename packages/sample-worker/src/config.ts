import {
  durationMs,
  hostPort,
  loadConfig,
  telemetrySettingsSchema,
  workerConfigSource,
} from '@switchyard/telemetry';
import { z } from 'zod';

/** Fixed, documented defaults (README): admin on 9400, echo listener on 7400, loopback only. */
export const SAMPLE_ADMIN_PORT = 9400;
export const SAMPLE_ECHO_PORT = 7400;

export const sampleConfigSchema = z.strictObject({
  telemetry: telemetrySettingsSchema(SAMPLE_ADMIN_PORT).prefault({}),
  echo: z
    .strictObject({
      listen: hostPort.default(`127.0.0.1:${SAMPLE_ECHO_PORT}`),
      idleTimeoutMs: durationMs.default(30_000),
      maxConnections: z.int().min(1).max(100_000).default(1024),
    })
    .prefault({}),
  traffic: z
    .strictObject({
      enabled: z.boolean().default(true),
      connectionsPerSecond: z.number().positive().max(1000).default(5),
      messagesPerConnection: z.int().min(1).max(1000).default(4),
      messageBytes: z.int().min(1).max(1_048_576).default(512),
    })
    .prefault({}),
  shutdownGraceMs: durationMs.default(10_000),
});

export type SampleConfig = z.infer<typeof sampleConfigSchema>;

/**
 * Reads the config: `--config <file>` (or SWITCHYARD_SAMPLE_CONFIG), then SWITCHYARD_SAMPLE_*
 * overrides. SWITCHYARD_DEMO_TRAFFIC=0 turns synthetic traffic off, as for every worker.
 */
export function readSampleConfig(argv: readonly string[], env: NodeJS.ProcessEnv): SampleConfig {
  const { file, overrides } = workerConfigSource('SWITCHYARD_SAMPLE_', argv, env, 'TRAFFIC__ENABLED');
  return loadConfig(sampleConfigSchema, { file, env: overrides, envPrefix: 'SWITCHYARD_SAMPLE_' });
}
