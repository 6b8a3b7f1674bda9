import { Client, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { decodeRetryDelayMs, otlpMessageCodecs, statusDetailsTrailer } from '@switchyard/otlp-proto';
import {
  describe,
  type OtlpLogsClientOptions,
  otlpLogsOptionsFromEnv,
  type Settings,
  validateOptions,
} from './otlp-logs-options.ts';

export {
  LogForwardOptionsError,
  type OtlpLogsClientOptions,
  type OtlpRetryPolicy,
} from './otlp-logs-options.ts';

/** The gRPC status names, indexed by status code: a closed set for `forward_errors_total{code}`. */
export const GRPC_STATUS_NAMES = Object.freeze([
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const);

export type GrpcStatusName = (typeof GRPC_STATUS_NAMES)[number];

/** What became of one `export()` call. */
export type ExportOutcome =
  /** The collector answered OK; `rejected` comes from its partial success, `accepted = records - rejected`. */
  | { kind: 'accepted'; accepted: number; rejected: number; errorMessage: string; attempts: number }
  /** Gave up: a non-retryable code, retries exhausted, the client closed, or the caller aborted (CANCELLED). */
  | { kind: 'failed'; code: GrpcStatusName; attempts: number; message: string };

const exportPath = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

/** OTLP spec, "Failures" (OTLP/gRPC): RESOURCE_EXHAUSTED only counts when the server sent RetryInfo. */
const retryableCodes: ReadonlySet<GrpcStatusName> = new Set([
  'CANCELLED',
  'DEADLINE_EXCEEDED',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNAVAILABLE',
  'DATA_LOSS',
]);

type AttemptResult =
  | { readonly ok: true; readonly response: Buffer }
  | {
      readonly ok: false;
      readonly code: GrpcStatusName;
      readonly message: string;
      readonly retryDelayMs?: number;
    };

function passThrough(bytes: Buffer): Buffer {
  return bytes;
}

function serverRetryDelayMs(error: ServiceError): number | undefined {
  const details = error.metadata?.get(statusDetailsTrailer)[0];
  if (!Buffer.isBuffer(details)) return undefined;
  try {
    return decodeRetryDelayMs(details);
  } catch {
    return undefined;
  }
}

function failedAttempt(error: ServiceError): AttemptResult {
  const retryDelayMs = serverRetryDelayMs(error);
  return {
    ok: false,
    code: GRPC_STATUS_NAMES[error.code] ?? 'UNKNOWN',
    message: error.details || error.message,
    ...(retryDelayMs !== undefined && { retryDelayMs }),
  };
}

function acceptedOutcome(response: Buffer, records: number, attempts: number): ExportOutcome {
  const accepted = (rejected: number, errorMessage: string): ExportOutcome => {
    return { kind: 'accepted', accepted: Math.max(0, records - rejected), rejected, errorMessage, attempts };
  };
  // An empty body is the common all-accepted answer: skip the decoder for it.
  if (response.length === 0) return accepted(0, '');
  try {
    const partial = otlpMessageCodecs().exportLogsServiceResponse.decode(response).partialSuccess;
    return accepted(Math.max(0, Number(partial?.rejectedLogRecords ?? 0)), partial?.errorMessage ?? '');
  } catch (error) {
    // The collector said OK, so the records are in; a retry would duplicate them.
    return accepted(0, `response is not an ExportLogsServiceResponse (${(error as Error).message})`);
  }
}

function abortedOutcome(attempts: number, signal: AbortSignal): ExportOutcome {
  return {
    kind: 'failed',
    code: 'CANCELLED',
    attempts,
    message: `export aborted: ${describe(signal.reason)}`,
  };
}

/** Resolves true after `delayMs`, or false as soon as `signal` aborts. */
function backoff(delayMs: number, signal: AbortSignal | undefined): Promise<boolean> {
  // onAttemptFailed may itself abort (a shutdown counted there), before the listener exists.
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, delayMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Sends already-serialized `ExportLogsServiceRequest` bytes to an OTLP/gRPC collector's
 * `LogsService/Export`, unchanged, retrying as the OTLP specification says.
 */
export class OtlpLogsClient {
  readonly #settings: Settings;
  readonly #client: Client;
  #closed = false;

  /** Validates the options (throwing LogForwardOptionsError) and opens a lazy channel. */
  constructor(options: OtlpLogsClientOptions) {
    this.#settings = validateOptions(options);
    this.#client = new Client(
      this.#settings.target,
      this.#settings.credentials,
      this.#settings.channelOptions,
    );
  }

  /** Options from the standard `OTEL_EXPORTER_OTLP_(LOGS_)*` environment: see {@link otlpLogsOptionsFromEnv}. */
  static optionsFromEnv(
    env: NodeJS.ProcessEnv = process.env,
    explicit: Partial<OtlpLogsClientOptions> = {},
  ): OtlpLogsClientOptions {
    return otlpLogsOptionsFromEnv(env, explicit);
  }

  /** The `host:port` the channel connects to. */
  get target(): string {
    return this.#settings.target;
  }

  /**
   * Sends `payload` (a serialized ExportLogsServiceRequest holding `records` log records) and
   * retries it until it is accepted, fails for good, or `signal` aborts, which cancels the call
   * in flight or the backoff wait. Never rejects.
   */
  async export(payload: Buffer, records: number, signal?: AbortSignal): Promise<ExportOutcome> {
    const { retry, timeoutMs } = this.#settings;
    const startedMs = performance.now();
    let attempts = 0;
    for (;;) {
      if (signal?.aborted) return abortedOutcome(attempts, signal);
      if (this.#closed) return { kind: 'failed', code: 'CANCELLED', attempts, message: 'client closed' };
      attempts += 1;
      const budgetMs = retry.maxElapsedMs - (performance.now() - startedMs);
      const result = await this.#attempt(payload, Math.max(1, Math.min(timeoutMs, budgetMs)), signal);
      if (result.ok) return acceptedOutcome(result.response, records, attempts);
      if (signal?.aborted) return abortedOutcome(attempts, signal);
      const next = this.#nextDelay(result, attempts, performance.now() - startedMs);
      this.#settings.onAttemptFailed?.(result.code, attempts, next.delayMs);
      if (next.delayMs === undefined) {
        return { kind: 'failed', code: result.code, attempts, message: `${result.message} (${next.giveUp})` };
      }
      if (!(await backoff(next.delayMs, signal))) return abortedOutcome(attempts, signal!);
    }
  }

  /** Closes the channel; calls in flight finish, later exports fail as CANCELLED. */
  close(): void {
    this.#closed = true;
    this.#client.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #nextDelay(
    failure: Extract<AttemptResult, { ok: false }>,
    attempts: number,
    elapsedMs: number,
  ): { delayMs: number; giveUp?: never } | { delayMs?: never; giveUp: string } {
    const { retry } = this.#settings;
    const hintMs = failure.retryDelayMs;
    const retryable =
      retryableCodes.has(failure.code) || (failure.code === 'RESOURCE_EXHAUSTED' && hintMs !== undefined);
    if (!retryable) return { giveUp: 'not retryable' };
    if (attempts >= retry.maxAttempts)
      return { giveUp: `gave up after ${attempts} attempts (retry.maxAttempts)` };
    // Full jitter (AWS, "Exponential Backoff and Jitter"): uniform in [0, capped exponential ceiling].
    const ceilingMs = Math.min(retry.maxBackoffMs, retry.initialBackoffMs * 2 ** (attempts - 1));
    const delayMs = hintMs ?? Math.random() * ceilingMs;
    if (elapsedMs + delayMs >= retry.maxElapsedMs) {
      return { giveUp: `gave up after ${attempts} attempts: next retry would pass maxElapsedMs` };
    }
    return { delayMs };
  }

  #attempt(payload: Buffer, timeoutMs: number, signal: AbortSignal | undefined): Promise<AttemptResult> {
    return new Promise((resolve) => {
      let call: ClientUnaryCall | undefined;
      const onAbort = (): void => call?.cancel();
      call = this.#client.makeUnaryRequest(
        exportPath,
        passThrough,
        passThrough,
        payload,
        this.#settings.metadata.clone(),
        { deadline: Date.now() + timeoutMs },
        (error: ServiceError | null, response?: Buffer) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(
            error === null ? { ok: true, response: response ?? Buffer.alloc(0) } : failedAttempt(error),
          );
        },
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
