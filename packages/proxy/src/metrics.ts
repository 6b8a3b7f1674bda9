import { type CatalogHandles, defineCatalog } from '@switchyard/telemetry';

/** Most upstreams one config may hold in all, and most pools and most listeners. */
export const PROXY_CONFIGURED_LIMIT = 10_000;

/**
 * Most configured combinations (pool x upstream, pool, listener) the catalog admits over the
 * process's life. A name a reload removes keeps its series, and its place here, until the process
 * restarts (ConfiguredNames in the telemetry package); twice the config's limit lets reloads
 * replace every name of a full config once before a restart is needed.
 */
const PROXY_REGISTERED_LIMIT = 2 * PROXY_CONFIGURED_LIMIT;

const pool = { description: 'Configured pool name.', configured: true } as const;
const upstream = { description: 'Configured upstream name (never its address).', configured: true } as const;
const listener = { description: 'Configured listener name.', configured: true } as const;

export const DIAL_FAILURE_REASONS = ['timeout', 'refused', 'reset', 'unreachable', 'other'] as const;
export type DialFailureReason = (typeof DIAL_FAILURE_REASONS)[number];
export const REJECT_REASONS = ['no_healthy_upstream', 'max_connections', 'draining'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/**
 * Every instrument the proxy records (docs/metrics.md is generated from this). Pool, upstream and
 * listener names come from the config (never addresses), registered at startup and on reload.
 */
export const proxyCatalog = defineCatalog({
  namespace: 'switchyard.proxy',
  configuredLimit: PROXY_REGISTERED_LIMIT,
  instruments: {
    connections: {
      kind: 'counter',
      unit: '{connection}',
      description: 'Connections proxied to the upstream (dial succeeded).',
      attributes: { pool, upstream },
    },
    active_connections: {
      kind: 'updown_counter',
      unit: '{connection}',
      description: 'Proxied connections open to the upstream now.',
      attributes: { pool, upstream },
    },
    upstream_healthy: {
      kind: 'gauge',
      unit: '{upstream}',
      description:
        '1 when the upstream may receive connections (active and passive health agree), 0 when not.',
      attributes: { pool, upstream },
    },
    dial_failures: {
      kind: 'counter',
      unit: '{dial}',
      description:
        'Failed dials to the upstream, by reason; each failure moves on to the next upstream if one is left.',
      attributes: {
        pool,
        upstream,
        reason: {
          description:
            'timeout: no connection within dialTimeout; refused: ECONNREFUSED; reset: ECONNRESET while connecting; unreachable: no route, address not available, name not found; other: anything else.',
          values: DIAL_FAILURE_REASONS,
        },
      },
    },
    bytes: {
      kind: 'counter',
      unit: 'By',
      description:
        'Bytes proxied, by direction; read from the sockets when metrics are collected and when a connection ends.',
      attributes: {
        pool,
        upstream,
        direction: {
          description:
            'client_to_upstream: read from the client; upstream_to_client: read from the upstream.',
          values: ['client_to_upstream', 'upstream_to_client'],
        },
      },
    },
    'connection.duration': {
      kind: 'histogram',
      unit: 's',
      description:
        'How long proxied connections lasted, from the upstream dial succeeding to both sides closing. By pool only: per upstream its 22 series (19 buckets, +Inf, sum, count) would make 220,000 at 10,000 upstreams; per-upstream load is in connections, active_connections and bytes.',
      attributes: { pool },
    },
    health_checks: {
      kind: 'counter',
      unit: '{check}',
      description: 'Active health checks of the upstream, by result.',
      attributes: {
        pool,
        upstream,
        result: { description: 'success or failure of one check.', values: ['success', 'failure'] },
      },
    },
    rejected_connections: {
      kind: 'counter',
      unit: '{connection}',
      description: 'Client connections closed without being proxied, by reason.',
      attributes: {
        listener,
        reason: {
          description:
            'no_healthy_upstream: no upstream healthy, or every dial attempt failed; max_connections: the listener was full; draining: the proxy is shutting down or the listener was removed by a reload.',
          values: REJECT_REASONS,
        },
      },
    },
    accepted_connections: {
      kind: 'counter',
      unit: '{connection}',
      description: 'Client connections accepted by the listener.',
      attributes: { listener },
    },
    listener_active_connections: {
      kind: 'updown_counter',
      unit: '{connection}',
      description: 'Client connections open on the listener now (dialling or proxied).',
      attributes: { listener },
    },
    config_reloads: {
      kind: 'counter',
      unit: '{reload}',
      description: 'Config reloads (SIGHUP), by result; a failed reload keeps the running config.',
      attributes: { result: { description: 'success or failure.', values: ['success', 'failure'] } },
    },
  },
});

export type ProxyMetrics = CatalogHandles<(typeof proxyCatalog)['declaration']>;
