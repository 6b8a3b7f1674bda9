import { z } from 'zod';
import { durationMs, port } from './config.ts';

/**
 * The `telemetry` section every worker's config embeds, so that all three read the same way:
 * `admin` (the /metrics, /healthz, /readyz server), `otlp` (optional push) and `processMetrics`.
 * `OTEL_*` variables fill whatever the file leaves out (docs/telemetry.md has the precedence).
 */
export function telemetrySettingsSchema(defaultAdminPort: number) {
  return z.strictObject({
    admin: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: port.default(defaultAdminPort),
        bearerToken: z.string().min(16).optional(),
      })
      .prefault({}),
    otlp: z
      .strictObject({
        endpoint: z.url({ protocol: /^https?$/ }).optional(),
        headers: z.record(z.string(), z.string()).optional(),
        compression: z.enum(['gzip', 'none']).optional(),
        timeoutMs: durationMs.optional(),
        intervalMs: durationMs.optional(),
        insecure: z.boolean().optional(),
        caFile: z.string().min(1).optional(),
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        temporality: z.enum(['cumulative', 'delta', 'lowmemory']).optional(),
      })
      .prefault({}),
    processMetrics: z.boolean().default(true),
  });
}
