import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ListenError } from './errors.ts';
import { type HttpServerHandles, instrumentHttpServer, type RouteClassifier } from './http-metrics.ts';
import type { Logger } from './logger.ts';
import { LIVENESS_LIMIT_MS, type WorkerState } from './worker-state.ts';

/** The routes of every worker's admin server, for the HTTP route label. */
export const ADMIN_ROUTES = ['/metrics', '/healthz', '/readyz'] as const;

export interface AdminServerOptions {
  /** Address to bind, separate from the data plane (e.g. 0.0.0.0 in a pod, 127.0.0.1 locally). */
  readonly host: string;
  readonly port: number;
  /** When set, GET /metrics requires `Authorization: Bearer <token>` (a ServiceMonitor can send one). */
  readonly bearerToken?: string | undefined;
  /** Answers an authorised GET or HEAD /metrics (metrics-endpoint.ts). */
  readonly metrics: { serve(request: IncomingMessage, response: ServerResponse): Promise<void> };
  /** Readiness and heartbeat of the data thread. */
  readonly state: WorkerState;
  readonly http?: { readonly handles: HttpServerHandles; readonly classify: RouteClassifier } | undefined;
  readonly logger: Logger;
}

/**
 * The worker's admin HTTP server, on the telemetry thread: `GET /metrics` (Prometheus pull),
 * `GET /healthz` (liveness: the data thread's event loop has run within LIVENESS_LIMIT_MS) and
 * `GET /readyz` (503 until the worker serves traffic and again once it shuts down, so that a
 * Service stops routing to it before it stops accepting).
 */
export class AdminServer {
  readonly #options: AdminServerOptions;
  readonly #server: Server;
  readonly #expectedAuthorization: Buffer | undefined;

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
        this.#healthz(response);
        return;
      case '/readyz': {
        const readiness = this.#options.state.readiness;
        if (readiness === 'ready') this.#reply(response, 200, 'ready\n');
        else this.#reply(response, 503, `${readiness === 'stopping' ? 'shutting down' : 'starting'}\n`);
        return;
      }
      case '/metrics':
        this.#metrics(request, response);
        return;
      default:
        this.#reply(response, 404, 'not found: try /metrics, /healthz or /readyz\n');
    }
  }

  #healthz(response: ServerResponse): void {
    const silentMs = this.#options.state.silentForMs();
    if (silentMs <= LIVENESS_LIMIT_MS) {
      this.#reply(response, 200, 'ok\n');
      return;
    }
    this.#reply(
      response,
      503,
      `the data thread has not run for ${Math.round(silentMs / 1000)} s: its event loop is blocked\n`,
    );
  }

  #metrics(request: IncomingMessage, response: ServerResponse): void {
    if (!this.#authorized(request)) {
      this.#reply(response, 401, 'unauthorized: /metrics needs "Authorization: Bearer <token>"\n', {
        'www-authenticate': 'Bearer realm="switchyard-metrics"',
      });
      return;
    }
    this.#options.metrics.serve(request, response).catch((error: unknown) => {
      this.#options.logger.error('answering /metrics failed', { error });
      if (!response.headersSent)
        this.#reply(response, 500, 'collecting metrics failed; see the worker log\n');
      else response.destroy();
    });
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
