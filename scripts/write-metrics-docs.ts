import { writeFileSync } from 'node:fs';
import { renderRepositoryMetricsReference } from './metrics-docs.ts';

const target = new URL('../docs/metrics.md', import.meta.url);
writeFileSync(target, renderRepositoryMetricsReference());
console.log(`wrote ${target.pathname}`);
