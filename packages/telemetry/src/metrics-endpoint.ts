import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { type CollectionHub, CollectTimeoutError } from './collection-hub.ts';
import { type ExpositionCounts, expositionChunks, expositionText } from './exposition.ts';
import { CONTENT_TYPES, type ExpositionFormat } from './exposition-format.ts';
import { GzipWriter } from './gzip-writer.ts';
import type { Logger } from './logger.ts';
import { acceptsGzip, negotiateFormat } from './negotiation.ts';
import { type SkippedMetric, serializePrometheus } from './prometheus-serializer.ts';
import type { CatalogHandles } from './recorder.ts';
import type { telemetryCatalog } from './telemetry-catalog.ts';

/**
 * GET /metrics on the telemetry thread: negotiates the format (negotiation.ts), takes one
 * collection of every writer (collection-hub.ts), writes the catalogs' series from it
 * (exposition.ts) followed by whatever the SDK's Prometheus reader collected of instruments outside
 * the catalogs, and streams the result chunk by chunk, gzip-compressed on this thread when the
 * scraper takes it (gzip-writer.ts). Nothing here runs on the data thread.
 */

type TelemetryHandles = CatalogHandles<(typeof telemetryCatalog)['declaration']>;

export interface MetricsEndpointOptions {
  readonly hub: CollectionHub;
  /** The SDK's pull reader, for instruments created through the OpenTelemetry API. */
  readonly sdkReader: PrometheusExporter;
  /** Escaped label pairs of `target_info` (the resource); none when empty. */
  readonly targetInfo: string | undefined;
  readonly handles: TelemetryHandles;
  readonly logger: Logger;
}

export class MetricsEndpoint {
  readonly #options: MetricsEndpointOptions;
  readonly #catalogNames: ReadonlySet<string>;
  readonly #loggedSkips = new Set<string>();
  readonly #duration: Readonly<Record<ExpositionFormat, { record(seconds: number): void }>>;
  readonly #failures: Readonly<Record<'timeout' | 'error', { add(): void }>>;
  readonly #series: { set(value: number): void };
  #failing = false;

  constructor(options: MetricsEndpointOptions) {
    this.#options = options;
    const { handles, hub } = options;
    this.#catalogNames = new Set(hub.registry.instruments.map((one) => one.instrument.prometheusName));
    this.#duration = {
      text: handles['scrape.duration'].series({ format: 'text' }),
      openmetrics: handles['scrape.duration'].series({ format: 'openmetrics' }),
    };
    this.#failures = {
      timeout: handles['scrape.failures'].cell({ reason: 'timeout' }),
      error: handles['scrape.failures'].cell({ reason: 'error' }),
    };
    this.#series = handles.series.cell();
  }

  /** The whole exposition as one string (`Telemetry.scrape()`). */
  async text(format: ExpositionFormat): Promise<string> {
    const values = await this.#collect();
    const counts: ExpositionCounts = { samples: 0 };
    const text = expositionText(await this.#input(values, format), counts);
    this.#series.set(counts.samples);
    return text;
  }

  /** Answers GET (and HEAD) /metrics. */
  async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const started = performance.now();
    const format = negotiateFormat(request.headers.accept);
    const gzip = acceptsGzip(request.headers['accept-encoding']);
    const headers = {
      'content-type': CONTENT_TYPES[format],
      vary: 'Accept, Accept-Encoding',
      ...(gzip && { 'content-encoding': 'gzip' }),
    };
    if (request.method === 'HEAD') {
      response.writeHead(200, headers).end();
      return;
    }
    let values: Float64Array;
    try {
      values = await this.#collect();
    } catch (error) {
      this.#fail(response, error);
      return;
    }
    response.writeHead(200, headers);
    const gzipWriter = gzip ? new GzipWriter() : undefined;
    if (gzipWriter !== undefined) response.write(gzipWriter.header());
    const counts: ExpositionCounts = { samples: 0 };
    const closed = new Promise<void>((resolve) => response.once('close', () => resolve()));
    for (const chunk of expositionChunks(await this.#input(values, format), counts)) {
      if (response.destroyed) return;
      const bytes = gzipWriter === undefined ? chunk : gzipWriter.chunk(chunk);
      if (!response.write(bytes)) await Promise.race([once(response, 'drain'), closed]);
    }
    response.end(gzipWriter?.end());
    this.#series.set(counts.samples);
    response.once('finish', () => this.#duration[format].record((performance.now() - started) / 1000));
    if (this.#failing) {
      this.#failing = false;
      this.#options.logger.info('/metrics answers again');
    }
  }

  /** One collection of every writer; a collect hook that threw is logged, as an SDK callback was. */
  async #collect(): Promise<Float64Array> {
    const { values, hookErrors } = await this.#options.hub.collect();
    for (const error of hookErrors) {
      this.#options.logger.warn('a metric callback failed during collection', { error });
    }
    return values;
  }

  async #input(values: Float64Array, format: ExpositionFormat) {
    const { hub, sdkReader, targetInfo } = this.#options;
    const collected = await sdkReader.collect();
    const extra = serializePrometheus(collected.resourceMetrics, {
      format,
      targetInfo: false,
      terminate: false,
      taken: this.#catalogNames,
    });
    this.#skipped(extra.skipped);
    for (const error of collected.errors) {
      this.#options.logger.warn('a metric callback failed during collection', { error });
    }
    return {
      registry: hub.registry,
      values,
      format,
      targetInfo,
      extraFamilies: extra.text === '' ? undefined : extra.text,
    };
  }

  #skipped(skipped: readonly SkippedMetric[]): void {
    for (const { name, reason } of skipped) {
      this.#options.handles.skipped_metrics.cell({ reason }).add();
      if (this.#loggedSkips.has(name)) continue;
      this.#loggedSkips.add(name);
      this.#options.logger.warn('a metric is left off /metrics', { metric: name, reason });
    }
  }

  #fail(response: ServerResponse, error: unknown): void {
    const timeout = error instanceof CollectTimeoutError;
    this.#failures[timeout ? 'timeout' : 'error'].add();
    if (!this.#failing) {
      this.#failing = true;
      this.#options.logger.error('collecting metrics for /metrics failed; logging again on recovery', {
        error: error instanceof Error ? error.message : String(error),
      });
    }
    response
      .writeHead(timeout ? 503 : 500, { 'content-type': 'text/plain; charset=utf-8' })
      .end(timeout ? `${(error as Error).message}\n` : 'collecting metrics failed; see the worker log\n');
  }
}
