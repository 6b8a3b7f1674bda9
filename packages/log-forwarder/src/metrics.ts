import { type CatalogHandles, defineCatalog } from '@switchyard/telemetry';
import { GRPC_STATUS_NAMES } from './otlp-logs-client.ts';

export const FRAME_ERROR_REASONS = ['unsupported_tag', 'too_large', 'truncated', 'decode_error'] as const;
export type FrameErrorReason = (typeof FRAME_ERROR_REASONS)[number];
export const BATCH_DROP_REASONS = [
  'buffer_full',
  'forward_failed',
  'shutdown',
  ...FRAME_ERROR_REASONS,
] as const;
export type BatchDropReason = (typeof BATCH_DROP_REASONS)[number];
/** Drops after receipt (inside the accounting invariant), then drops the sender reported (outside it). */
export const RECORD_DROP_REASONS = [
  'buffer_full',
  'forward_failed',
  'rejected',
  'shutdown',
  'sender_channel_full',
  'sender_batch_full',
] as const;
export type RecordDropReason = (typeof RECORD_DROP_REASONS)[number];

/**
 * Every instrument the log forwarder records (docs/metrics.md is generated from this).
 *
 * Accounting invariant, true at every scrape:
 *   records_received = records_forwarded
 *                    + records_dropped{buffer_full, forward_failed, rejected, shutdown}
 *                    + buffer_records + in_flight_records
 * Sender-reported drops (sender_channel_full, sender_batch_full) never reached the forwarder and
 * stand outside it; frames refused before their records are known count in frame_errors and
 * batches_dropped only.
 */
export const logForwarderCatalog = defineCatalog({
  namespace: 'switchyard.log_forwarder',
  instruments: {
    batches_received: {
      kind: 'counter',
      unit: '{batch}',
      description: 'Log batches decoded from valid frames.',
    },
    records_received: {
      kind: 'counter',
      unit: '{record}',
      description: 'Log records in the batches received.',
    },
    batches_forwarded: {
      kind: 'counter',
      unit: '{batch}',
      description: 'Intake batches whose export the Collector accepted (fully or partly).',
    },
    records_forwarded: {
      kind: 'counter',
      unit: '{record}',
      description: 'Log records the Collector accepted.',
    },
    batches_dropped: {
      kind: 'counter',
      unit: '{batch}',
      description: 'Intake batches not forwarded, by reason.',
      attributes: {
        reason: {
          description:
            'buffer_full: the buffer was at capacity on arrival; forward_failed: the Collector refused or could not be reached within the retries; shutdown: still buffered when the grace period ended; unsupported_tag, too_large, truncated, decode_error: the frame was refused before its records were known.',
          values: BATCH_DROP_REASONS,
        },
      },
    },
    records_dropped: {
      kind: 'counter',
      unit: '{record}',
      description: 'Log records not forwarded, by reason, including drops the senders reported.',
      attributes: {
        reason: {
          description:
            'buffer_full, forward_failed, shutdown: as for batches; rejected: the Collector accepted the export but rejected these records (partial success); sender_channel_full, sender_batch_full: dropped inside a sender before they reached us (from its status messages).',
          values: RECORD_DROP_REASONS,
        },
      },
    },
    buffer_batches: { kind: 'gauge', unit: '{batch}', description: 'Batches waiting in the buffer now.' },
    buffer_bytes: { kind: 'gauge', unit: 'By', description: 'Payload bytes waiting in the buffer now.' },
    buffer_records: {
      kind: 'gauge',
      unit: '{record}',
      description: 'Log records waiting in the buffer now.',
    },
    buffer_capacity_batches: {
      kind: 'gauge',
      unit: '{batch}',
      description: 'Configured buffer capacity in batches.',
    },
    buffer_capacity_bytes: { kind: 'gauge', unit: 'By', description: 'Configured buffer capacity in bytes.' },
    in_flight_records: {
      kind: 'gauge',
      unit: '{record}',
      description: 'Log records in the export being sent to the Collector now.',
    },
    'forward.duration': {
      kind: 'histogram',
      unit: 's',
      description: 'Time one export took, retries included, whatever its outcome.',
    },
    forward_retries: {
      kind: 'counter',
      unit: '{retry}',
      description: 'Export attempts retried after a retryable error.',
    },
    forward_errors: {
      kind: 'counter',
      unit: '{error}',
      description: 'Failed export attempts, by gRPC status (retried or not).',
      attributes: { code: { description: 'gRPC status name.', values: GRPC_STATUS_NAMES } },
    },
    active_connections: {
      kind: 'updown_counter',
      unit: '{connection}',
      description: 'Sender connections open now.',
    },
    connections: { kind: 'counter', unit: '{connection}', description: 'Sender connections accepted.' },
    frame_errors: {
      kind: 'counter',
      unit: '{frame}',
      description:
        'Frames refused, by reason; unsupported_tag, too_large and truncated close that connection, decode_error skips the frame.',
      attributes: { reason: { description: 'Why the frame was refused.', values: FRAME_ERROR_REASONS } },
    },
  },
});

export type LogForwarderMetrics = CatalogHandles<(typeof logForwarderCatalog)['declaration']>;
