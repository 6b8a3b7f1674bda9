// /metrics of a real worker in both formats it speaks, checked by the tools Prometheus users run:
// text 0.0.4 by `promtool check metrics`, OpenMetrics 1.0 by Prometheus 3.16's own parser (omcheck;
// promtool lints only text 0.0.4), compressed as a scraper asks, and the two carrying the same series.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { checkExposition, type ExpositionCheck } from './support/openmetrics.ts';
import { checkMetrics } from './support/promtool.ts';
import { type RunningSampleWorker, startSampleWorker } from './support/worker-process.ts';

/** What Prometheus 3.x sends by default (scrape_protocols: OpenMetrics first). */
const PROMETHEUS_3_ACCEPT =
  'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1';

interface Scraped {
  readonly contentType: string;
  readonly contentEncoding: string | undefined;
  readonly body: string;
}

/** One GET /metrics with raw bytes, decompressed here, so that the test sees what was sent. */
function scrape(url: string, headers: Record<string, string>): Promise<Scraped> {
  return new Promise((resolve, reject) => {
    request(`${url}/metrics`, { headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const raw = Buffer.concat(chunks);
        const contentEncoding = response.headers['content-encoding'];
        resolve({
          contentType: response.headers['content-type'] ?? '',
          contentEncoding,
          body: (contentEncoding === 'gzip' ? gunzipSync(raw) : raw).toString('utf8'),
        });
      });
    })
      .on('error', reject)
      .end();
  });
}

/** `name{sorted labels}` of every sample: the series, without values (traffic moves them). */
function seriesOf(check: ExpositionCheck): string[] {
  return check.samples
    .map(({ name, labels }) => {
      const pairs = Object.keys(labels)
        .sort()
        .map((key) => `${key}="${labels[key]}"`);
      return `${name}{${pairs.join(',')}}`;
    })
    .sort();
}

describe('/metrics of the sample worker, in OpenMetrics and in text 0.0.4', () => {
  let worker: RunningSampleWorker;
  let openMetrics: Scraped;
  let text: Scraped;

  before(async () => {
    worker = await startSampleWorker({ SWITCHYARD_SAMPLE_TRAFFIC__CONNECTIONS_PER_SECOND: '50' });
    // Every kind moved, histograms included (they appear with their first observation).
    for (;;) {
      text = await scrape(worker.adminUrl, { accept: 'text/plain;version=0.0.4' });
      if (/^switchyard_sample_connection_duration_seconds_count [1-9]/m.test(text.body)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Each format's scrape-duration series appears once a scrape in it has finished.
    await scrape(worker.adminUrl, { accept: PROMETHEUS_3_ACCEPT });
    openMetrics = await scrape(worker.adminUrl, { accept: PROMETHEUS_3_ACCEPT, 'accept-encoding': 'gzip' });
    text = await scrape(worker.adminUrl, { accept: 'text/plain;version=0.0.4', 'accept-encoding': 'gzip' });
  });
  after(() => worker.stop());

  test('Prometheus 3’s request gets gzip-compressed OpenMetrics 1.0 that its own parser accepts', async () => {
    assert.equal(openMetrics.contentType, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    assert.equal(openMetrics.contentEncoding, 'gzip');
    const check = await checkExposition(openMetrics.body, 'openmetrics');
    assert.deepEqual(check.problems, []);
    assert.ok(check.ok);
    const families = new Map(check.families.map((family) => [family.name, family]));
    assert.equal(families.get('switchyard_sample_bytes')?.type, 'counter');
    assert.equal(families.get('switchyard_sample_bytes')?.unit, 'bytes');
    assert.equal(families.get('target')?.type, 'info');
  });

  test('a text 0.0.4 request gets what promtool check metrics and Prometheus’ text parser accept', async () => {
    assert.equal(text.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    const verdict = await checkMetrics(text.body);
    assert.deepEqual(verdict.problems, [], verdict.output);
    assert.ok(verdict.ok);
    const check = await checkExposition(text.body, 'text');
    assert.deepEqual(check.problems, []);
  });

  test('both formats carry the same series', async () => {
    const [fromOpenMetrics, fromText] = await Promise.all([
      checkExposition(openMetrics.body, 'openmetrics'),
      checkExposition(text.body, 'text'),
    ]);
    const series = seriesOf(fromOpenMetrics);
    assert.ok(series.length > 100, `${series.length} series`);
    assert.deepEqual(seriesOf(fromText), series);
  });
});
