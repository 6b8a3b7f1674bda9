import type { AddressInfo } from 'node:net';
import type { MessagePort } from 'node:worker_threads';
import type { CatalogDeclaration } from './catalog.ts';
import type { ExpositionFormat } from './exposition-format.ts';
import type { LogLevel } from './logger.ts';
import type { OtlpPushConfig } from './otlp-push.ts';

/**
 * What the data thread (telemetry.ts) and the telemetry thread (telemetry-thread.ts) say to each
 * other over the worker's parent port. Metric values never pass here: they are in shared memory,
 * collected over each writer's own port (metrics-writer.ts).
 */

/** The telemetry part of every worker's config (see `telemetrySettingsSchema`). */
export interface TelemetrySettings {
  readonly admin: {
    readonly host: string;
    readonly port: number;
    readonly bearerToken?: string | undefined;
  };
  readonly otlp: OtlpPushConfig;
  /** CPU, memory, event loop and GC metrics of the Node process (default on). */
  readonly processMetrics: boolean;
}

/** `workerData` of the telemetry thread. */
export interface TelemetryThreadInit {
  readonly serviceName: string;
  readonly serviceVersion: string;
  /** The worker's catalog declaration (plain data); the thread resolves it again. */
  readonly catalog: CatalogDeclaration;
  readonly httpRoutes: readonly string[];
  readonly settings: TelemetrySettings;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** WorkerState's buffer: readiness and the data thread's heartbeat. */
  readonly state: SharedArrayBuffer;
  /** The data thread's writer port (transferred). */
  readonly writerPort: MessagePort;
  /** How long a collection waits for a data thread's snapshot. */
  readonly collectTimeoutMs: number;
}

export type ControlRequest =
  | { readonly type: 'scrape'; readonly id: number; readonly format: ExpositionFormat }
  | { readonly type: 'flush'; readonly id: number }
  | { readonly type: 'shutdown'; readonly id: number }
  | { readonly type: 'add-writer'; readonly port: MessagePort };

/** An error crossing threads: enough to rebuild a SwitchyardError with its code. */
export interface ThreadError {
  readonly name: string;
  readonly message: string;
  readonly code?: string | undefined;
}

export type ControlMessage =
  | { readonly type: 'ready'; readonly address: AddressInfo; readonly otlpEndpoint: string | undefined }
  | { readonly type: 'failed'; readonly error: ThreadError }
  | { readonly type: 'reply'; readonly id: number; readonly text?: string; readonly error?: ThreadError }
  | {
      readonly type: 'log';
      readonly level: LogLevel;
      readonly msg: string;
      readonly fields: Readonly<Record<string, unknown>>;
    };

export function threadError(error: unknown): ThreadError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const { code } = error as { code?: unknown };
  return { name: error.name, message: error.message, code: typeof code === 'string' ? code : undefined };
}
