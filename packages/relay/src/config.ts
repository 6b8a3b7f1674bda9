import {
  durationMs,
  hostPort,
  loadConfig,
  telemetrySettingsSchema,
  workerConfigSource,
} from '@switchyard/telemetry';
import { z } from 'zod';

/** Fixed, documented defaults (README): DERP over HTTP on 127.0.0.1:7403, admin on 9402. */
export const RELAY_ADMIN_PORT = 9402;
export const DEFAULT_LISTEN = '127.0.0.1:7403';
export const DEFAULT_KEY_FILE = '/tmp/switchyard/relay-key.json';

const meshPeerSchema = z.strictObject({
  /** A name for logs; never a metric label. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'a lower-case name of letters, digits, ".", "_" or "-"'),
  /** The peer relay's DERP URL: http(s)://host:port/derp (Upgrade: DERP) or ws(s)://host:port/derp. */
  url: z.url({ protocol: /^(https?|wss?)$/ }),
});

export const relayConfigSchema = z.strictObject({
  telemetry: telemetrySettingsSchema(RELAY_ADMIN_PORT).prefault({}),
  /** The HTTP listener serving /derp (Upgrade: DERP and WebSocket), /derp/probe and /generate_204. */
  listen: hostPort.default(DEFAULT_LISTEN),
  /** Serve HTTPS from these PEM files; without them, plain HTTP (loopback, or behind a TLS-terminating ingress). */
  tls: z.strictObject({ certFile: z.string().min(1), keyFile: z.string().min(1) }).optional(),
  /** The relay's key pair, in derper's JSON format; created with a fresh key when missing. */
  keyFile: z.string().min(1).default(DEFAULT_KEY_FILE),
  /** Packets held per client while it is not reading; beyond this the oldest is dropped. */
  sendQueueLength: z.int().min(1).max(65_536).default(32),
  /** A client whose stream stays backed up this long is disconnected (derper: 2 s). */
  writeTimeoutMs: durationMs.default(2_000),
  /** Time a new connection has to log in. */
  handshakeTimeoutMs: durationMs.default(10_000),
  keepAliveIntervalMs: durationMs.default(60_000),
  /** Relay-initiated pings (ping_rtt_seconds); 0 turns them off. */
  pingIntervalMs: durationMs.default(60_000),
  admission: z
    .strictObject({
      /** One `nodekey:<hex>` per line; when set, only those keys may log in (mesh peers always may). */
      allowListFile: z.string().min(1).optional(),
      /** How often the file is checked for changes. */
      pollIntervalMs: durationMs.default(2_000),
    })
    .prefault({}),
  mesh: z
    .strictObject({
      /** File holding the mesh pre-shared key, 64 hex digits (derper's -mesh-psk-file). */
      keyFile: z.string().min(1).optional(),
      /** Other relays of the region; this relay keeps a watch connection to each. */
      peers: z.array(meshPeerSchema).max(64).default([]),
      /** Wait before redialling a peer after a failure, doubling up to 30 s. */
      retryDelayMs: durationMs.default(1_000),
    })
    .prefault({})
    .refine((mesh) => mesh.peers.length === 0 || mesh.keyFile !== undefined, {
      message: 'mesh.peers needs mesh.keyFile: peers accept only relays that present the mesh key',
    }),
  shutdownGraceMs: durationMs.default(10_000),
  demo: z
    .strictObject({
      traffic: z
        .strictObject({
          enabled: z.boolean().default(false),
          /** Demo clients that connect to the relay and send to each other. */
          clients: z.int().min(2).max(1_000).default(4),
          packetsPerSecond: z.number().positive().max(100_000).default(50),
          packetBytes: z.int().min(1).max(65_536).default(1024),
        })
        .prefault({}),
    })
    .prefault({}),
});

export type RelayConfig = z.infer<typeof relayConfigSchema>;

/** The built-in config `npm start` runs: demo clients exchanging packets through the relay. */
export const DEMO_CONFIG = Object.freeze({ demo: { traffic: { enabled: true } } });

/**
 * Reads the config: `--config <file>` (or SWITCHYARD_RELAY_CONFIG) with SWITCHYARD_RELAY_*
 * overrides; without a file, the built-in demo config. SWITCHYARD_DEMO_TRAFFIC=0 turns the demo
 * clients off.
 */
export function readRelayConfig(argv: readonly string[], env: NodeJS.ProcessEnv): RelayConfig {
  const { file, overrides } = workerConfigSource('SWITCHYARD_RELAY_', argv, env, 'DEMO__TRAFFIC__ENABLED');
  return loadConfig(relayConfigSchema, {
    file,
    env: overrides,
    envPrefix: 'SWITCHYARD_RELAY_',
    defaults: file === undefined ? DEMO_CONFIG : undefined,
  });
}
