import { Metadata, type StatusObject, status } from '@grpc/grpc-js';
import { ReceiverOptionError } from './errors.ts';
import { encodeRetryStatusDetails, statusDetailsTrailer } from './status-details.ts';

/** The two OTLP signals the receiver serves. */
export type OtlpSignal = 'metrics' | 'logs';

/** How the receiver answers one Export call. */
export type OtlpAnswer =
  /** gRPC OK with an empty response: everything accepted. */
  | { readonly kind: 'success' }
  /**
   * gRPC OK with `partial_success` set: `rejected` data points (metrics) or log records (logs)
   * were refused, for the reason in `errorMessage`.
   */
  | { readonly kind: 'partial-success'; readonly rejected: number; readonly errorMessage?: string }
  /**
   * A gRPC error status. With `retryDelayMs`, the trailers carry a google.rpc.RetryInfo asking the
   * client to wait that long before retrying (the OTLP throttling signal, normally with
   * UNAVAILABLE or RESOURCE_EXHAUSTED).
   */
  | {
      readonly kind: 'error';
      readonly code: status;
      readonly details?: string;
      readonly retryDelayMs?: number;
    };

export const successAnswer: OtlpAnswer = Object.freeze({ kind: 'success' });

type AnswerCallback = (error: Partial<StatusObject> | null, value?: object) => void;

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Checks an answer before it is queued, so a bad one fails in the test that scripted it. */
export function validateAnswer(answer: OtlpAnswer): OtlpAnswer {
  switch (answer.kind) {
    case 'success':
      return successAnswer;
    case 'partial-success':
      if (!isNonNegativeInteger(answer.rejected)) {
        throw new ReceiverOptionError('answer.rejected', answer.rejected, 'use a non-negative integer count');
      }
      return Object.freeze({ ...answer });
    case 'error':
      if (
        !Number.isInteger(answer.code) ||
        answer.code < status.CANCELLED ||
        answer.code > status.UNAUTHENTICATED
      ) {
        throw new ReceiverOptionError(
          'answer.code',
          answer.code,
          'use a gRPC status code from 1 (CANCELLED) to 16 (UNAUTHENTICATED); answer OK with kind "success"',
        );
      }
      if (
        answer.retryDelayMs !== undefined &&
        !(Number.isFinite(answer.retryDelayMs) && answer.retryDelayMs >= 0)
      ) {
        throw new ReceiverOptionError('answer.retryDelayMs', answer.retryDelayMs, 'use a finite number >= 0');
      }
      return Object.freeze({ ...answer });
    default:
      throw new ReceiverOptionError(
        'answer.kind',
        (answer as { kind: unknown }).kind,
        'use "success", "partial-success" or "error"',
      );
  }
}

function partialSuccess(signal: OtlpSignal, rejected: number, errorMessage: string): object {
  return signal === 'metrics'
    ? { rejectedDataPoints: String(rejected), errorMessage }
    : { rejectedLogRecords: String(rejected), errorMessage };
}

function errorStatus(code: status, details: string | undefined, retryDelayMs: number | undefined) {
  const message = details ?? `OtlpReceiver scripted answer ${status[code]}`;
  const trailers = new Metadata();
  if (retryDelayMs !== undefined) {
    trailers.set(statusDetailsTrailer, encodeRetryStatusDetails(code, message, retryDelayMs));
  }
  return { code, details: message, metadata: trailers };
}

/** Completes a unary Export call with the given answer. */
export function sendAnswer(signal: OtlpSignal, answer: OtlpAnswer, callback: AnswerCallback): void {
  switch (answer.kind) {
    case 'success':
      callback(null, {});
      return;
    case 'partial-success':
      callback(null, { partialSuccess: partialSuccess(signal, answer.rejected, answer.errorMessage ?? '') });
      return;
    case 'error':
      callback(errorStatus(answer.code, answer.details, answer.retryDelayMs));
      return;
  }
}
