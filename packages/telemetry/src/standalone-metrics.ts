import type { Catalog, CatalogDeclaration } from './catalog.ts';
import { expositionText } from './exposition.ts';
import type { ExpositionFormat } from './exposition-format.ts';
import { MetricsWriter } from './metrics-writer.ts';
import { type CatalogHandles, registerCatalog } from './recorder.ts';
import { SeriesRegistry, WriterView } from './series-registry.ts';

/** A catalog recorded and exposed on this thread, with no telemetry thread: for tests and tools. */
export interface StandaloneMetrics<D extends CatalogDeclaration> {
  readonly metrics: CatalogHandles<D>;
  /** What /metrics would serve for this catalog now (no `target_info`, no other catalogs). */
  scrape(format?: ExpositionFormat): string;
}

/**
 * Records `catalog` into a writer of its own and exposes it synchronously, through the same
 * snapshot, registry and serializer the telemetry thread uses. Components under test take
 * `metrics` exactly as they take `Telemetry.metrics` in a worker.
 */
export function standaloneMetrics<D extends CatalogDeclaration>(catalog: Catalog<D>): StandaloneMetrics<D> {
  const writer = new MetricsWriter();
  const metrics = registerCatalog(writer, catalog);
  const registry = new SeriesRegistry(catalog.instruments);
  const view = new WriterView(writer.published.buffer);
  return {
    metrics,
    scrape: (format = 'text') => {
      registry.snapshotLocal(writer, view);
      return expositionText({ registry, values: registry.merge(), format });
    },
  };
}
