import { defineCatalog } from '@switchyard/telemetry';

/** Every instrument the sample worker records (docs/metrics.md is generated from this). */
export const sampleCatalog = defineCatalog({
  namespace: 'switchyard.sample',
  instruments: {
    connections: {
      kind: 'counter',
      unit: '{connection}',
      description: 'Connections accepted by the echo listener.',
    },
    active_connections: {
      kind: 'updown_counter',
      unit: '{connection}',
      description: 'Echo connections open now.',
    },
    bytes: {
      kind: 'counter',
      unit: 'By',
      description: 'Bytes through the echo listener, by direction.',
      attributes: {
        direction: {
          description: 'received: from clients; sent: echoed back.',
          values: ['received', 'sent'],
        },
      },
    },
    'connection.errors': {
      kind: 'counter',
      unit: '{connection}',
      description: 'Echo connections that ended in a socket error, by reason.',
      attributes: {
        reason: {
          description:
            'reset: ECONNRESET/EPIPE; timeout: idle longer than the configured timeout; other: any other error.',
          values: ['reset', 'timeout', 'other'],
        },
      },
    },
    'connection.duration': {
      kind: 'histogram',
      unit: 's',
      description: 'How long echo connections stayed open.',
    },
    ready: {
      kind: 'gauge',
      unit: '{state}',
      description: '1 while the worker serves traffic, 0 while it starts or shuts down.',
    },
  },
});
