import { ADMIN_ROUTES } from './admin-server.ts';
import {
  assertUniqueNames,
  type Catalog,
  type CatalogDeclaration,
  type ResolvedInstrument,
} from './catalog.ts';
import { type HttpServerCatalog, httpServerCatalog } from './http-metrics.ts';
import { processCatalog, runtimeCatalog } from './process-metrics.ts';
import { telemetryCatalog } from './telemetry-catalog.ts';

/** Every catalog a worker process records, as both of its threads need them. */
export interface PipelineCatalogs {
  /** The admin server's routes and the worker's own, for the HTTP route label. */
  readonly routes: readonly string[];
  readonly http: HttpServerCatalog;
  /** The worker's, the pipeline's, HTTP, runtime and process instruments. */
  readonly instruments: readonly ResolvedInstrument[];
}

/** Throws CatalogRuleError when two of them share a name (rule N12). */
export function pipelineCatalogs(
  worker: Catalog<CatalogDeclaration>,
  workerRoutes: readonly string[],
): PipelineCatalogs {
  const routes = [...ADMIN_ROUTES, ...workerRoutes];
  const http = httpServerCatalog(routes);
  const instruments = [
    ...worker.instruments,
    ...telemetryCatalog.instruments,
    ...http.instruments,
    ...runtimeCatalog.instruments,
    ...processCatalog.instruments,
  ];
  assertUniqueNames(instruments);
  return { routes, http, instruments };
}
