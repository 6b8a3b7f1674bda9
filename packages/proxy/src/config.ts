import {
  durationMs,
  hostPort,
  loadConfig,
  telemetrySettingsSchema,
  workerConfigSource,
} from '@switchyard/telemetry';
import { z } from 'zod';
import { ProxyConfigError } from './errors.ts';
import { PROXY_CONFIGURED_LIMIT } from './metrics.ts';

/** Fixed, documented defaults (README): admin on 9401, the demo listener on 7401. */
export const PROXY_ADMIN_PORT = 9401;
export const PROXY_DEMO_PORT = 7401;
export const DEMO_BACKEND_PORTS = [7501, 7502, 7503] as const;

const name = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_.-]{0,62}$/,
    'expected a name of lower-case letters, digits, "_", "." or "-" (at most 63)',
  )
  .refine((value) => value !== 'other', '"other" is reserved for metric values outside the configured names');

const activeHealthCheck = z.strictObject({
  enabled: z.boolean().default(true),
  intervalMs: durationMs.default(2_000),
  timeoutMs: durationMs.default(1_000),
  unhealthyThreshold: z.int().min(1).max(100).default(3),
  healthyThreshold: z.int().min(1).max(100).default(2),
  /** Bytes to send after connecting (text; `\n` etc. as in JSON strings). */
  send: z.string().min(1).max(1024).optional(),
  /** The reply must start with these bytes. */
  expect: z.string().min(1).max(1024).optional(),
});

const passiveHealth = z.strictObject({
  enabled: z.boolean().default(true),
  maxFailures: z.int().min(1).max(1000).default(3),
  windowMs: durationMs.default(10_000),
  cooldownMs: durationMs.default(30_000),
});

const upstreamSchema = z.strictObject({
  name,
  address: hostPort,
});

/**
 * Most upstreams in one pool, as large as HAProxy backends run. A new connection's dial orders its
 * pool's healthy upstreams (balancer.ts): least_connections and client_ip_hash read every one of
 * them, which at this size costs about 5 µs and 15 µs or more (by name length) a connection.
 */
export const MAX_UPSTREAMS_PER_POOL = 1_000;

const poolSchema = z.strictObject({
  name,
  policy: z
    .enum(['round_robin', 'least_connections', 'random', 'first', 'client_ip_hash'])
    .default('round_robin'),
  upstreams: z
    .array(upstreamSchema)
    .min(1)
    .max(MAX_UPSTREAMS_PER_POOL, {
      error: (issue) =>
        `${(issue.input as readonly unknown[]).length} upstreams; at most ${MAX_UPSTREAMS_PER_POOL} in one pool (split the rest into another pool)`,
    }),
  dialTimeoutMs: durationMs.default(2_000),
  /** Upstreams tried for one client connection before it is closed (the first pick plus failovers). */
  maxAttempts: z.int().min(1).max(16).default(3),
  idleTimeoutMs: durationMs.default(300_000),
  proxyProtocol: z.enum(['none', 'v1', 'v2']).default('none'),
  healthCheck: activeHealthCheck.prefault({}),
  passiveHealth: passiveHealth.prefault({}),
});

const listenerSchema = z.strictObject({
  name,
  listen: hostPort,
  pool: name,
  maxConnections: z.int().min(1).max(1_000_000).default(10_000),
});

const demoSchema = z.strictObject({
  /** Start local echo backends on the upstream addresses of the config (the built-in demo). */
  backends: z.boolean().default(false),
  traffic: z
    .strictObject({
      enabled: z.boolean().default(false),
      connectionsPerSecond: z.number().positive().max(1000).default(20),
      messageBytes: z.int().min(1).max(1_048_576).default(4096),
    })
    .prefault({}),
});

export const proxyConfigSchema = z.strictObject({
  telemetry: telemetrySettingsSchema(PROXY_ADMIN_PORT).prefault({}),
  listeners: z.array(listenerSchema).min(1).max(PROXY_CONFIGURED_LIMIT),
  pools: z.array(poolSchema).min(1).max(PROXY_CONFIGURED_LIMIT),
  shutdownGraceMs: durationMs.default(10_000),
  demo: demoSchema.prefault({}),
});

export type ProxyConfig = z.infer<typeof proxyConfigSchema>;
export type PoolConfig = ProxyConfig['pools'][number];
export type ListenerConfig = ProxyConfig['listeners'][number];
export type UpstreamConfig = PoolConfig['upstreams'][number];

/** The built-in config `npm start` runs: one listener, three local echo backends, synthetic clients. */
export const DEMO_CONFIG = Object.freeze({
  listeners: [{ name: 'demo', listen: `127.0.0.1:${PROXY_DEMO_PORT}`, pool: 'echo' }],
  pools: [
    {
      name: 'echo',
      policy: 'round_robin',
      upstreams: DEMO_BACKEND_PORTS.map((port, i) => ({
        name: `echo-${i + 1}`,
        address: `127.0.0.1:${port}`,
      })),
    },
  ],
  demo: { backends: true, traffic: { enabled: true } },
});

/** The names that occur more than once, in one pass: a config may hold 10,000 upstreams. */
function duplicates(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const repeated: string[] = [];
  for (const value of names) {
    if (seen.has(value)) repeated.push(value);
    else seen.add(value);
  }
  return repeated;
}

/** Checks what the schema cannot: names unique, references resolve, limits across pools. */
export function checkProxyConfig(config: ProxyConfig): ProxyConfig {
  const poolNames = config.pools.map((pool) => pool.name);
  const [duplicatePool] = duplicates(poolNames);
  if (duplicatePool !== undefined)
    throw new ProxyConfigError('pools', `pool name "${duplicatePool}" is used twice; names must be unique`);
  const [duplicateListener] = duplicates(config.listeners.map((listener) => listener.name));
  if (duplicateListener !== undefined) {
    throw new ProxyConfigError(
      'listeners',
      `listener name "${duplicateListener}" is used twice; names must be unique`,
    );
  }
  const [duplicateAddress] = duplicates(config.listeners.map((listener) => listener.listen));
  if (duplicateAddress !== undefined && !duplicateAddress.endsWith(':0')) {
    throw new ProxyConfigError(
      'listeners',
      `two listeners listen on ${duplicateAddress}; each needs its own address`,
    );
  }
  const definedPools = new Set(poolNames);
  config.listeners.forEach((listener, i) => {
    if (!definedPools.has(listener.pool)) {
      throw new ProxyConfigError(
        `listeners.${i}.pool`,
        `listener "${listener.name}" routes to pool "${listener.pool}", which is not defined; defined pools: ${poolNames.join(', ')}`,
      );
    }
  });
  let upstreams = 0;
  config.pools.forEach((pool, i) => {
    const [duplicateUpstream] = duplicates(pool.upstreams.map((upstream) => upstream.name));
    if (duplicateUpstream !== undefined) {
      throw new ProxyConfigError(
        `pools.${i}.upstreams`,
        `upstream name "${duplicateUpstream}" is used twice in pool "${pool.name}"`,
      );
    }
    const check = pool.healthCheck;
    if (check.timeoutMs > check.intervalMs) {
      throw new ProxyConfigError(
        `pools.${i}.healthCheck.timeoutMs`,
        `${check.timeoutMs} ms is longer than intervalMs (${check.intervalMs} ms); a check must end before the next starts`,
      );
    }
    if (check.intervalMs < 10)
      throw new ProxyConfigError(`pools.${i}.healthCheck.intervalMs`, 'must be at least 10 ms');
    if (pool.dialTimeoutMs < 1)
      throw new ProxyConfigError(`pools.${i}.dialTimeoutMs`, 'must be at least 1 ms');
    if (pool.idleTimeoutMs < 1)
      throw new ProxyConfigError(`pools.${i}.idleTimeoutMs`, 'must be at least 1 ms');
    if (pool.passiveHealth.windowMs < 1 || pool.passiveHealth.cooldownMs < 1) {
      throw new ProxyConfigError(`pools.${i}.passiveHealth`, 'windowMs and cooldownMs must be at least 1 ms');
    }
    upstreams += pool.upstreams.length;
  });
  if (upstreams > PROXY_CONFIGURED_LIMIT) {
    throw new ProxyConfigError(
      'pools',
      `${upstreams} upstreams in all; at most ${PROXY_CONFIGURED_LIMIT} keep the metrics bounded (each adds its series, docs/metrics.md)`,
    );
  }
  return config;
}

/**
 * Reads the proxy config: `--config <file>` (or SWITCHYARD_PROXY_CONFIG) with SWITCHYARD_PROXY_*
 * overrides; without a file, the built-in demo config. SWITCHYARD_DEMO_TRAFFIC=0 turns the demo's
 * synthetic clients off. SIGHUP reads the same file again.
 */
export function readProxyConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ProxyConfig {
  const { file, overrides } = workerConfigSource('SWITCHYARD_PROXY_', argv, env, 'DEMO__TRAFFIC__ENABLED');
  return checkProxyConfig(
    loadConfig(proxyConfigSchema, {
      file,
      env: overrides,
      envPrefix: 'SWITCHYARD_PROXY_',
      defaults: file === undefined ? DEMO_CONFIG : undefined,
    }),
  );
}
