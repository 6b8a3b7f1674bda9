import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { type Catalog, defineCatalog, OTHER_VALUE } from './catalog.ts';
import type { MetricsWriter } from './metrics-writer.ts';
import { type CatalogHandles, registerCatalog } from './recorder.ts';

/**
 * HTTP server metrics after the OpenTelemetry HTTP semantic conventions (stable names and keys),
 * for every HTTP surface a worker serves: the admin server, the relay's /derp endpoint. The route
 * label comes from a classifier over the routes the process declares, so that no path an attacker
 * sends ever becomes a label value.
 */

/** Methods of RFC 9110 + PATCH, as the semantic conventions list them; anything else is `other`. */
export const HTTP_METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
] as const;

/** Status codes Switchyard's servers answer with; anything else is `other`. */
export const HTTP_STATUS_CODES = [
  '101',
  '200',
  '204',
  '400',
  '401',
  '403',
  '404',
  '405',
  '413',
  '426',
  '429',
  '500',
  '503',
] as const;

/** Semantic conventions' recommended boundaries for http.server.request.duration, in seconds. */
const REQUEST_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

function declareHttpCatalog(routes: readonly string[]) {
  return defineCatalog({
    namespace: 'http.server',
    semanticConventions: true,
    instruments: {
      'http.server.request.duration': {
        kind: 'histogram',
        unit: 's',
        description: 'Duration of HTTP server requests, from the request head to the end of the response.',
        buckets: REQUEST_DURATION_BUCKETS,
        attributes: {
          'http.request.method': {
            description: 'HTTP method; unknown methods are other.',
            values: HTTP_METHODS,
          },
          'http.response.status_code': {
            description: 'Status code of the response.',
            values: HTTP_STATUS_CODES,
          },
          'http.route': {
            description: 'The matched route template; unmatched paths are other.',
            values: routes,
          },
        },
      },
      'http.server.active_requests': {
        kind: 'updown_counter',
        unit: '{request}',
        description: 'HTTP server requests in progress.',
        attributes: {
          'http.request.method': {
            description: 'HTTP method; unknown methods are other.',
            values: HTTP_METHODS,
          },
        },
      },
    },
  });
}

export type HttpServerCatalog = ReturnType<typeof declareHttpCatalog>;
export type HttpServerHandles = CatalogHandles<HttpServerCatalog['declaration']>;

/** The semantic-convention HTTP catalog for the given route templates (every surface's, together). */
export function httpServerCatalog(routes: readonly string[]): HttpServerCatalog {
  return declareHttpCatalog([...new Set(routes)].sort());
}

/** Maps a request path onto one of the declared route templates, or `other`. */
export type RouteClassifier = (path: string) => string;

/**
 * Builds a classifier from route templates: literal segments match themselves, a `:name` segment
 * matches any one segment, a final `*` matches the rest. The query string is ignored. A path that
 * matches nothing is `other`.
 */
export function createRouteClassifier(routes: readonly string[]): RouteClassifier {
  const exact = new Set(routes.filter((route) => !/(^|\/)(:|\*)/.test(route)));
  const patterns = routes
    .filter((route) => !exact.has(route))
    .map((route) => ({ route, segments: route.split('/') }));
  return (path) => {
    const end = path.search(/[?#]/);
    const pathname = end === -1 ? path : path.slice(0, end);
    if (exact.has(pathname)) return pathname;
    const segments = pathname.split('/');
    for (const { route, segments: template } of patterns) {
      if (matches(template, segments)) return route;
    }
    return OTHER_VALUE;
  };
}

function matches(template: readonly string[], segments: readonly string[]): boolean {
  for (let i = 0; i < template.length; i++) {
    const part = template[i] as string;
    if (part === '*' && i === template.length - 1) return true;
    const segment = segments[i];
    if (segment === undefined) return false;
    if (part.startsWith(':') ? segment === '' : part !== segment) return false;
  }
  return template.length === segments.length;
}

/** Records the HTTP server metrics of every request `server` handles. */
export function instrumentHttpServer(
  server: Server,
  handles: HttpServerHandles,
  classify: RouteClassifier,
): void {
  server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => {
    const started = performance.now();
    const method = request.method ?? '';
    const active = handles['http.server.active_requests'].cell({ 'http.request.method': method });
    active.add(1);
    response.once('close', () => {
      active.add(-1);
      recordHttpRequest(handles, classify, request, response.statusCode, started);
    });
  });
}

/**
 * Records one finished request in `http.server.request.duration`. `instrumentHttpServer` does this
 * for ordinary requests; a server that answers upgrades itself (the relay's `/derp`) calls it with
 * the status it wrote.
 */
export function recordHttpRequest(
  handles: HttpServerHandles,
  classify: RouteClassifier,
  request: IncomingMessage,
  statusCode: number,
  startedMs: number,
): void {
  handles['http.server.request.duration']
    .series({
      'http.request.method': request.method ?? '',
      'http.response.status_code': String(statusCode),
      'http.route': classify(request.url ?? ''),
    })
    .record((performance.now() - startedMs) / 1000);
}

/** Convenience: the catalog's cells in `writer`, with its classifier. */
export function registerHttpServerMetrics(
  writer: MetricsWriter,
  catalog: Catalog<HttpServerCatalog['declaration']>,
  routes: readonly string[],
): { handles: HttpServerHandles; classify: RouteClassifier } {
  return { handles: registerCatalog(writer, catalog), classify: createRouteClassifier(routes) };
}
