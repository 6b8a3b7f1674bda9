import { readFileSync } from 'node:fs';
import {
  type ChannelCredentials,
  type ChannelOptions,
  compressionAlgorithms,
  credentials,
  Metadata,
} from '@grpc/grpc-js';
import { SwitchyardError } from '@switchyard/telemetry';
import type { GrpcStatusName } from './otlp-logs-client.ts';

/**
 * How an export is retried. Retries are bounded by time, `maxElapsedMs`, not by a count: while the
 * channel waits out its reconnect backoff (from `initialBackoffMs`, growing 1.6-fold per failed
 * connection attempt up to `maxBackoffMs`, ±20%), every attempt fails at once with UNAVAILABLE, so
 * a count runs out in moments. An export begun while the collector is up is therefore forwarded as
 * long as `maxElapsedMs` exceeds about 2.2 x `maxBackoffMs` (the channel's next connection attempt,
 * then our next retry): 11 s with the defaults.
 */
export interface OtlpRetryPolicy {
  /**
   * @deprecated An extra cap on attempts per export, the first one included. Unset by default:
   * attempts that fail at once while the channel waits to reconnect count too, so a collector that
   * restarts can outlast a count of them; bound retries with `maxElapsedMs`. Still honored when set.
   */
  readonly maxAttempts?: number | undefined;
  /** Backoff ceiling before the first retry, in ms; it doubles per retry. Default 100. */
  readonly initialBackoffMs?: number;
  /** Cap on the doubling backoff ceiling, in ms. Default 5000. */
  readonly maxBackoffMs?: number;
  /** No retry starts, and no attempt runs, past this many ms after the export began. Default 30000. */
  readonly maxElapsedMs?: number;
}

export interface OtlpLogsClientOptions {
  /** `http://host:port` (plaintext), `https://host:port` (TLS), or bare `host:port` (plaintext). */
  readonly endpoint: string;
  /** Sent as gRPC metadata on every call; text values only. Default none. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Default `'none'`. */
  readonly compression?: 'gzip' | 'none' | undefined;
  /** Deadline of each attempt, in ms. Default 10000 (the OTLP exporter default). */
  readonly timeoutMs?: number | undefined;
  /**
   * `true` forces plaintext on a bare `host:port`; `false` asks for TLS there. Not allowed with
   * `https://` or with TLS files. Default: bare endpoints are plaintext unless TLS files are given.
   */
  readonly insecure?: boolean | undefined;
  /** PEM file of the CA certificates that sign the collector's certificate. Default: system roots. */
  readonly caFile?: string | undefined;
  /** PEM client certificate chain for mutual TLS; needs `keyFile`. */
  readonly certFile?: string | undefined;
  /** PEM private key of `certFile`. */
  readonly keyFile?: string | undefined;
  readonly retry?: OtlpRetryPolicy | undefined;
  /**
   * Called after every attempt that the collector or the transport failed (not after a caller's
   * abort): `delayMs` is the wait before the next attempt, `undefined` when the export gives up.
   * Must not throw.
   */
  readonly onAttemptFailed?:
    | ((code: GrpcStatusName, attempt: number, delayMs: number | undefined) => void)
    | undefined;
}

/** An OtlpLogsClient option (or the `OTEL_*` variable it came from) holds a value that is not allowed. */
export class LogForwardOptionsError extends SwitchyardError {
  readonly field: string;

  constructor(field: string, value: unknown, allowed: string, options?: ErrorOptions) {
    super(
      'SWY_ERR_LOG_FORWARD_OPTIONS',
      `log forwarder upstream: ${field} is ${describe(value)}; ${allowed}`,
      options,
    );
    this.field = field;
  }
}

export function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

interface RetrySettings {
  /** `Infinity` unless the deprecated `maxAttempts` was given. */
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly maxElapsedMs: number;
}

export interface Settings {
  readonly target: string;
  readonly credentials: ChannelCredentials;
  readonly metadata: Metadata;
  readonly channelOptions: ChannelOptions;
  readonly timeoutMs: number;
  readonly retry: RetrySettings;
  readonly onAttemptFailed: OtlpLogsClientOptions['onAttemptFailed'];
}

const defaultEndpoint = 'http://localhost:4317';
const maxTimerMs = 2_147_483_647;
const bareAddress = /^(?<host>\[[0-9A-Fa-f:.]+\]|[^\s/:[\]]+):(?<port>\d{1,5})$/;
const endpointAllowed =
  'use "http://host:port" (plaintext), "https://host:port" (TLS) or "host:port" (plaintext)';

function positiveMs(field: string, value: number | undefined, fallback: number): number {
  const ms = value ?? fallback;
  if (!(typeof ms === 'number' && ms > 0 && ms <= maxTimerMs)) {
    throw new LogForwardOptionsError(field, ms, `use a number of milliseconds > 0 and <= ${maxTimerMs}`);
  }
  return ms;
}

function retrySettings(policy: OtlpRetryPolicy = {}): RetrySettings {
  const { maxAttempts } = policy;
  if (maxAttempts !== undefined && !(Number.isSafeInteger(maxAttempts) && maxAttempts >= 1)) {
    throw new LogForwardOptionsError(
      'retry.maxAttempts',
      maxAttempts,
      'use an integer >= 1 (1: no retries), or leave it unset and bound retries with retry.maxElapsedMs',
    );
  }
  const initialBackoffMs = positiveMs('retry.initialBackoffMs', policy.initialBackoffMs, 100);
  const maxBackoffMs = positiveMs('retry.maxBackoffMs', policy.maxBackoffMs, 5000);
  if (maxBackoffMs < initialBackoffMs) {
    throw new LogForwardOptionsError(
      'retry.maxBackoffMs',
      maxBackoffMs,
      `use a value >= retry.initialBackoffMs (${initialBackoffMs})`,
    );
  }
  const maxElapsedMs = positiveMs('retry.maxElapsedMs', policy.maxElapsedMs, 30_000);
  return Object.freeze({
    maxAttempts: maxAttempts ?? Number.POSITIVE_INFINITY,
    initialBackoffMs,
    maxBackoffMs,
    maxElapsedMs,
  });
}

function parseEndpoint(endpoint: unknown): { target: string; scheme: 'http' | 'https' | undefined } {
  if (typeof endpoint !== 'string') throw new LogForwardOptionsError('endpoint', endpoint, endpointAllowed);
  const bare = bareAddress.exec(endpoint);
  if (bare !== null) {
    const port = Number(bare.groups!.port);
    if (port < 1 || port > 65_535) throw new LogForwardOptionsError('endpoint', endpoint, endpointAllowed);
    return { target: endpoint, scheme: undefined };
  }
  const url = URL.parse(endpoint);
  const hasExtras = url !== null && (url.username || url.password || url.search || url.hash);
  if (
    url === null ||
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.hostname === '' ||
    hasExtras ||
    (url.pathname !== '/' && url.pathname !== '')
  ) {
    throw new LogForwardOptionsError('endpoint', endpoint, `${endpointAllowed}, without a path`);
  }
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  const port = url.port === '' ? (scheme === 'https' ? '443' : '80') : url.port;
  return { target: `${url.hostname}:${port}`, scheme };
}

function readPem(field: 'caFile' | 'certFile' | 'keyFile', file: string | undefined): Buffer | null {
  if (file === undefined) return null;
  try {
    return readFileSync(file);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new LogForwardOptionsError(field, file, `use a readable PEM file (${reason})`, { cause });
  }
}

function transportCredentials(
  options: OtlpLogsClientOptions,
  scheme: 'http' | 'https' | undefined,
): ChannelCredentials {
  const { insecure, caFile, certFile, keyFile } = options;
  const tlsFileField = caFile !== undefined ? 'caFile' : certFile !== undefined ? 'certFile' : 'keyFile';
  const hasTlsFiles = (caFile ?? certFile ?? keyFile) !== undefined;
  if (insecure === true && (scheme === 'https' || hasTlsFiles)) {
    throw new LogForwardOptionsError(
      'insecure',
      insecure,
      'plaintext cannot be combined with an https:// endpoint or TLS files; drop one of them',
    );
  }
  if (scheme === 'http' && hasTlsFiles) {
    throw new LogForwardOptionsError(
      tlsFileField,
      options[tlsFileField],
      'TLS files need an https:// endpoint',
    );
  }
  const useTls = scheme === 'https' || (scheme === undefined && (insecure === false || hasTlsFiles));
  if (!useTls) return credentials.createInsecure();
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const field = certFile === undefined ? 'keyFile' : 'certFile';
    throw new LogForwardOptionsError(
      field,
      options[field],
      'give certFile and keyFile together for client TLS',
    );
  }
  const pems = [
    readPem('caFile', caFile),
    readPem('keyFile', keyFile),
    readPem('certFile', certFile),
  ] as const;
  try {
    return credentials.createSsl(...pems);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new LogForwardOptionsError(tlsFileField, options[tlsFileField], `use valid PEM files (${reason})`, {
      cause,
    });
  }
}

function grpcMetadata(headers: OtlpLogsClientOptions['headers']): Metadata {
  const metadata = new Metadata();
  if (headers === undefined) return metadata;
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw new LogForwardOptionsError('headers', headers, 'use an object of header name to text value');
  }
  for (const [key, value] of Object.entries(headers)) {
    const allowed =
      'use a key of letters, digits, "-", "_", "." (not ending in "-bin") and a printable ASCII value';
    if (typeof value !== 'string' || key.toLowerCase().endsWith('-bin')) {
      throw new LogForwardOptionsError(`headers.${key}`, value, allowed);
    }
    try {
      metadata.set(key, value);
    } catch (cause) {
      throw new LogForwardOptionsError(`headers.${key}`, value, allowed, { cause });
    }
  }
  return metadata;
}

export function validateOptions(options: OtlpLogsClientOptions): Settings {
  const { target, scheme } = parseEndpoint(options.endpoint);
  const compression = options.compression ?? 'none';
  if (compression !== 'gzip' && compression !== 'none') {
    throw new LogForwardOptionsError('compression', compression, 'use "gzip" or "none"');
  }
  const retry = retrySettings(options.retry);
  return Object.freeze({
    target,
    credentials: transportCredentials(options, scheme),
    metadata: grpcMetadata(options.headers),
    channelOptions: {
      'grpc.primary_user_agent': 'switchyard-log-forwarder',
      'grpc.default_compression_algorithm':
        compression === 'gzip' ? compressionAlgorithms.gzip : compressionAlgorithms.identity,
      // grpc-js reconnects after up to 120 s by default; a restarted collector should be found
      // again within one of our own backoffs, not minutes later. Until the channel reconnects,
      // attempts fail at once: retries must last longer than this backoff (see OtlpRetryPolicy).
      'grpc.initial_reconnect_backoff_ms': retry.initialBackoffMs,
      'grpc.max_reconnect_backoff_ms': retry.maxBackoffMs,
    },
    timeoutMs: positiveMs('timeoutMs', options.timeoutMs, 10_000),
    retry,
    onAttemptFailed: options.onAttemptFailed,
  });
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/** Reads `OTEL_EXPORTER_OTLP_LOGS_<name>`, else `OTEL_EXPORTER_OTLP_<name>`, naming the one used. */
function otelVariable(env: NodeJS.ProcessEnv, name: string): { variable: string; raw: string } | undefined {
  for (const variable of [`OTEL_EXPORTER_OTLP_LOGS_${name}`, `OTEL_EXPORTER_OTLP_${name}`]) {
    const raw = nonEmpty(env[variable]);
    if (raw !== undefined) return { variable, raw };
  }
  return undefined;
}

/** `k=v,k2=v2` with percent-encoded values, the OTLP exporter's `_HEADERS` format. */
function parseHeaders(variable: string, raw: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of raw.split(',')) {
    if (pair.trim() === '') continue;
    const separator = pair.indexOf('=');
    const key = separator > 0 ? pair.slice(0, separator).trim() : '';
    const decoded = key === '' ? undefined : safeDecode(pair.slice(separator + 1).trim());
    if (decoded === undefined) {
      throw new LogForwardOptionsError(
        variable,
        raw,
        'use comma-separated key=value pairs, values percent-encoded',
      );
    }
    headers[key] = decoded;
  }
  return headers;
}

function safeDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

function envTimeoutMs(env: NodeJS.ProcessEnv): number | undefined {
  const found = otelVariable(env, 'TIMEOUT');
  if (found === undefined) return undefined;
  const ms = Number(found.raw);
  if (!(Number.isSafeInteger(ms) && ms > 0)) {
    throw new LogForwardOptionsError(
      found.variable,
      found.raw,
      'use a positive integer number of milliseconds',
    );
  }
  return ms;
}

function envCompression(env: NodeJS.ProcessEnv): 'gzip' | 'none' | undefined {
  const found = otelVariable(env, 'COMPRESSION');
  if (found === undefined) return undefined;
  const compression = found.raw.toLowerCase();
  if (compression !== 'gzip' && compression !== 'none') {
    throw new LogForwardOptionsError(found.variable, found.raw, 'use "gzip" or "none"');
  }
  return compression;
}

function envInsecure(env: NodeJS.ProcessEnv): boolean | undefined {
  const found = otelVariable(env, 'INSECURE');
  if (found === undefined) return undefined;
  const flag = found.raw.toLowerCase();
  if (flag !== 'true' && flag !== 'false') {
    throw new LogForwardOptionsError(found.variable, found.raw, 'use "true" or "false"');
  }
  return flag === 'true';
}

/**
 * Options from the standard exporter environment, for `new OtlpLogsClient(...)`. For each option
 * the first that is set wins: the `explicit` value, then `OTEL_EXPORTER_OTLP_LOGS_*`, then
 * `OTEL_EXPORTER_OTLP_*`, then the default (endpoint `http://localhost:4317`). A headers list is
 * taken whole from one source, never merged. As the spec says, `_INSECURE` applies only to an
 * endpoint without a scheme, and the TLS file variables (`_CERTIFICATE`, `_CLIENT_CERTIFICATE`,
 * `_CLIENT_KEY`) not to an `http://` one. Throws LogForwardOptionsError naming a bad variable.
 */
export function otlpLogsOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  explicit: Partial<OtlpLogsClientOptions> = {},
): OtlpLogsClientOptions {
  const endpoint = explicit.endpoint ?? otelVariable(env, 'ENDPOINT')?.raw ?? defaultEndpoint;
  const scheme = /^https?:\/\//i.exec(endpoint)?.[0].toLowerCase();
  const headers = otelVariable(env, 'HEADERS');
  const tlsFile = (name: string) => (scheme === 'http://' ? undefined : otelVariable(env, name)?.raw);
  return {
    ...explicit,
    endpoint,
    headers: explicit.headers ?? (headers && parseHeaders(headers.variable, headers.raw)),
    compression: explicit.compression ?? envCompression(env),
    timeoutMs: explicit.timeoutMs ?? envTimeoutMs(env),
    insecure: explicit.insecure ?? (scheme === undefined ? envInsecure(env) : undefined),
    caFile: explicit.caFile ?? tlsFile('CERTIFICATE'),
    certFile: explicit.certFile ?? tlsFile('CLIENT_CERTIFICATE'),
    keyFile: explicit.keyFile ?? tlsFile('CLIENT_KEY'),
  };
}
