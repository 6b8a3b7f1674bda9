import type { ExpositionFormat } from './exposition-format.ts';

/**
 * Content negotiation for /metrics (RFC 9110 section 12.5): which text format the scraper asked for
 * in `Accept`, and whether it takes gzip in `Accept-Encoding`.
 *
 * OpenMetrics 1.0 is served when the scraper names `application/openmetrics-text` with
 * `version=1.0.0` or no version (Prometheus 3 does, first) at a quality at least that of text;
 * text 0.0.4 otherwise: for a wildcard Accept (curl, browsers), and when nothing we speak is acceptable (as
 * client_golang does: a scraper that names no format still gets metrics).
 */

interface MediaRange {
  readonly type: string;
  readonly parameters: ReadonlyMap<string, string>;
  readonly quality: number;
}

function parseQuality(value: string | undefined): number {
  if (value === undefined) return 1;
  const quality = Number(value);
  return Number.isFinite(quality) && quality >= 0 && quality <= 1 ? quality : 0;
}

function parseList(header: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const element of header.split(',')) {
    const [rawType = '', ...rawParameters] = element.split(';');
    const type = rawType.trim().toLowerCase();
    if (type === '') continue;
    const parameters = new Map<string, string>();
    for (const parameter of rawParameters) {
      const equals = parameter.indexOf('=');
      if (equals < 0) continue;
      const name = parameter.slice(0, equals).trim().toLowerCase();
      const value = parameter
        .slice(equals + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1');
      parameters.set(name, value);
    }
    ranges.push({ type, parameters, quality: parseQuality(parameters.get('q')) });
  }
  return ranges;
}

/**
 * The quality the scraper gives one media type: the most specific range that matches it (wildcards
 * only when `wildcards`).
 */
function qualityOf(
  ranges: readonly MediaRange[],
  type: string,
  accepts: (range: MediaRange) => boolean,
  wildcards: boolean,
): number {
  const [major] = type.split('/');
  let best: { specificity: number; quality: number } | undefined;
  for (const range of ranges) {
    let specificity = -1;
    if (range.type === type && accepts(range)) specificity = 2;
    else if (wildcards && range.type === `${major}/*`) specificity = 1;
    else if (wildcards && range.type === '*/*') specificity = 0;
    if (specificity < 0) continue;
    if (best === undefined || specificity > best.specificity) best = { specificity, quality: range.quality };
  }
  return best?.quality ?? 0;
}

export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  if (accept === undefined || accept.trim() === '') return 'text';
  const ranges = parseList(accept);
  const openMetrics = qualityOf(
    ranges,
    'application/openmetrics-text',
    (range) => {
      const version = range.parameters.get('version');
      return version === undefined || version === '1.0.0';
    },
    false,
  );
  const text = qualityOf(
    ranges,
    'text/plain',
    (range) => {
      const version = range.parameters.get('version');
      return version === undefined || version === '0.0.4';
    },
    true,
  );
  return openMetrics > 0 && openMetrics >= text ? 'openmetrics' : 'text';
}

/** Whether the response may be gzip-compressed (`gzip` or `*` with a quality above zero). */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (acceptEncoding === undefined) return false;
  let gzip: number | undefined;
  let any: number | undefined;
  for (const element of acceptEncoding.split(',')) {
    const [rawCoding = '', ...parameters] = element.split(';');
    const coding = rawCoding.trim().toLowerCase();
    const q = parameters.map((p) => p.trim()).find((p) => p.toLowerCase().startsWith('q='));
    const quality = parseQuality(q?.slice(2));
    if (coding === 'gzip' || coding === 'x-gzip') gzip = quality;
    else if (coding === '*') any = quality;
  }
  return (gzip ?? any ?? 0) > 0;
}
