import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ListenError } from './errors.ts';
import { type HttpServerHandles, instrumentHttpServer, type RouteClassifier } from './http-metrics.ts';
import type { Logger } from './logger.ts';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus-serializer.ts';

/** The routes of every worker's admin server, for the HTTP route label. */
export const ADMIN_ROUTES = ['/metrics', '/healthz', '/readyz'] as const;

export interface AdminServerOptions {
  /** Address to bind, separate from the data plane (e.g. 0.0.0.0 in a pod, 127.0.0.1 locally). */
  readonly host: string;
  readonly port: number;
  /** When set, GET /metrics requires `Authorization: Bearer <token>` (a ServiceMonitor can send one). */
  readonly bearerToken?: string | undefined;
  /** Produces the Prometheus exposition for /metrics. */
  readonly scrape: () => Promise<string>;
  readonly http?: { readonly handles: HttpServerHandles; readonly classify: RouteClassifier } | undefined;
  readonly logger: Logger;
}

type Readiness = 'starting' | 'ready' | 'stopping';

/**
 * The worker's admin HTTP server: `GET /metrics` (Prometheus pull), `GET /healthz` (liveness: the
 * event loop answers) and `GET /readyz` (503 until the worker serves traffic and again once it
 * shuts down, so that a Service stops routing to it before it stops accepting).
 */
export class AdminServer {
  readonly #options: AdminServerOptions;
  readonly #server: Server;
  readonly #expectedAuthorization: Buffer | undefined;
  #readiness: Readiness = 'starting';

  constructor(options: AdminServerOptions) {
    this.#options = options;
    this.#expectedAuthorization =
      options.bearerToken === undefined ? undefined : Buffer.from(`Bearer ${options.bearerToken}`);
    this.#server = createServer((request, response) => this.#handle(request, response));
    // Keep-alive scrapes must not hold shutdown: idle sockets close when the server closes.
    this.#server.keepAliveTimeout = 5_000;
    if (options.http !== undefined)
      instrumentHttpServer(this.#server, options.http.handles, options.http.classify);
  }

  /** Binds the address; resolves with the bound port (useful with port 0 in tests). */
  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const failed = (error: NodeJS.ErrnoException) =>
        reject(new ListenError('admin server', `${this.#options.host}:${this.#options.port}`, error));
      this.#server.once('error', failed);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', failed);
        resolve();
      });
    });
    return this.#server.address() as AddressInfo;
  }

  /** `true` once the worker serves traffic; `false` again from the start of shutdown. */
  setReady(ready: boolean): void {
    if (this.#readiness === 'stopping') return;
    this.#readiness = ready ? 'ready' : 'starting';
  }

  /** Readiness turns 503 for good: the first step of graceful shutdown. */
  markStopping(): void {
    this.#readiness = 'stopping';
  }

  get readiness(): Readiness {
    return this.#readiness;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    await closed;
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '/').split('?', 1)[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      this.#reply(response, 405, 'method not allowed: the admin server answers GET and HEAD\n', {
        allow: 'GET, HEAD',
      });
      return;
    }
    switch (path) {
      case '/healthz':
        this.#reply(response, 200, 'ok\n');
        return;
      case '/readyz':
        if (this.#readiness === 'ready') this.#reply(response, 200, 'ready\n');
        else this.#reply(response, 503, `${this.#readiness === 'stopping' ? 'shutting down' : 'starting'}\n`);
        return;
      case '/metrics':
        this.#metrics(request, response);
        return;
      default:
        this.#reply(response, 404, 'not found: try /metrics, /healthz or /readyz\n');
    }
  }

  #metrics(request: IncomingMessage, response: ServerResponse): void {
    if (!this.#authorized(request)) {
      this.#reply(response, 401, 'unauthorized: /metrics needs "Authorization: Bearer <token>"\n', {
        'www-authenticate': 'Bearer realm="switchyard-metrics"',
      });
      return;
    }
    this.#options.scrape().then(
      (text) => this.#reply(response, 200, text, { 'content-type': PROMETHEUS_CONTENT_TYPE }),
      (error: unknown) => {
        this.#options.logger.error('collecting metrics for /metrics failed', { error });
        this.#reply(response, 500, 'collecting metrics failed; see the worker log\n');
      },
    );
  }

  #authorized(request: IncomingMessage): boolean {
    const expected = this.#expectedAuthorization;
    if (expected === undefined) return true;
    const given = Buffer.from(request.headers.authorization ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  #reply(response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
    response.end(response.req.method === 'HEAD' ? undefined : body);
  }
}
