import { z } from 'zod';
import { ConfigError } from './errors.ts';

// Turns zod issues from loadConfig into one ConfigError message: what is allowed, the value as
// written (secrets redacted), and the file, variable or defaults it came from.

const MAX_LISTED_ISSUES = 20;
const MAX_VALUE_CHARS = 80;
const SECRET_KEY = /secret|token|password|passwd|credential|api_?key|private_?key/i;

export interface Origins {
  /** Defaults, file and env layered: offending values are shown as written, before any transform. */
  input: unknown;
  file: string | undefined;
  fromFile: unknown;
  defaults: unknown;
  envSources: Map<string, string>;
  envPrefix: string;
}

interface Problem {
  field: string;
  source: string;
  detail: string;
}

export function configErrorFrom(issues: readonly z.core.$ZodIssue[], origins: Origins): ConfigError {
  const problems = issues.flatMap((issue) => describeIssue(issue, origins));
  const [first] = problems;
  if (problems.length === 1 && first !== undefined) {
    return new ConfigError(first.field, `config error in ${first.source}: ${first.detail}`);
  }
  const listed = problems
    .slice(0, MAX_LISTED_ISSUES)
    .map((problem) => `  in ${problem.source}: ${problem.detail}`);
  if (problems.length > MAX_LISTED_ISSUES)
    listed.push(`  ... and ${problems.length - MAX_LISTED_ISSUES} more`);
  const sources = [...new Set(problems.map((problem) => problem.source))].join(', ');
  const summary = `config error: ${problems.length} problems in ${sources}`;
  return new ConfigError(first?.field ?? '', [summary, ...listed].join('\n'));
}

function describeIssue(issue: z.core.$ZodIssue, origins: Origins): Problem[] {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => describeValue([...path, key], issue.message, origins));
  }
  if (issue.code === 'invalid_type' && valueAt(origins.input, path) === undefined) {
    const field = path.join('.') || '<root>';
    const envName = origins.envPrefix + path.map(upperSnake).join('__');
    const source = origins.file ?? `env ${origins.envPrefix}*`;
    const detail = `${field} is missing: ${issue.message}; set it in the file or with ${envName}`;
    return [{ field, source, detail }];
  }
  let message = issue.message;
  const source = sourceOf(path, origins);
  if (issue.code === 'invalid_type' && issue.expected === 'string' && source.startsWith('env ')) {
    message += ` (a value that parses as JSON is taken as JSON: quote it, e.g. '"12345"', to pass a string)`;
  }
  return [describeValue(path, message, origins, source)];
}

function describeValue(
  path: string[],
  allowed: string,
  origins: Origins,
  source = sourceOf(path, origins),
): Problem {
  const field = path.join('.') || '<root>';
  const value = valueAt(origins.input, path);
  const shown = SECRET_KEY.test(path.at(-1) ?? '') ? '<redacted>' : renderValue(value);
  return { field, source, detail: `${field} = ${shown} is not allowed: ${allowed}` };
}

function sourceOf(path: string[], origins: Origins): string {
  for (let depth = path.length; depth >= 0; depth--) {
    const name = origins.envSources.get(path.slice(0, depth).join('.'));
    if (name !== undefined) return `env ${name}`;
  }
  if (origins.file !== undefined && hasPath(origins.fromFile, path)) return origins.file;
  if (hasPath(origins.defaults, path)) return 'defaults';
  return origins.file ?? `env ${origins.envPrefix}*`;
}

function hasPath(root: unknown, path: string[]): boolean {
  return valueAt(root, path) !== undefined;
}

function valueAt(root: unknown, path: string[]): unknown {
  let node = root;
  for (const key of path) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

export function renderValue(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 3)}...` : text;
}

/** Error map for config parsing: each message says what is allowed, phrased after "is not allowed: ". */
export function describeAllowed(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.schema instanceof z.ZodNumber) return `expected ${describeNumber(issue.schema)}`;
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}`;
    case 'too_big':
    case 'too_small':
      if (issue.schema instanceof z.ZodNumber) return `expected ${describeNumber(issue.schema)}`;
      return describeSize(issue);
    case 'invalid_value':
      if (issue.values.length === 1) return `expected ${renderValue(issue.values[0])}`;
      return `expected one of ${issue.values.map((value) => renderValue(value)).join(', ')}`;
    case 'unrecognized_keys': {
      const shape = (issue.inst?._zod.def as { shape?: object } | undefined)?.shape ?? {};
      return `unknown key; the keys allowed here are ${Object.keys(shape).join(', ') || 'none'}`;
    }
    case 'invalid_format':
      return describeFormat(issue);
    case 'not_multiple_of':
      return `expected a multiple of ${issue.divisor}`;
    case 'invalid_union': {
      const branches = issue.errors.map(
        (branch) => branch[0]?.message.replace(/^expected /, '') ?? 'something else',
      );
      if (branches.length > 0) return `expected ${[...new Set(branches)].join(' or ')}`;
      const options: unknown = issue.options;
      if (!Array.isArray(options)) return undefined;
      return `expected one of ${options.map((option) => renderValue(option)).join(', ')}`;
    }
    default:
      return undefined;
  }
}

function describeFormat(issue: z.core.$ZodRawIssue<z.core.$ZodIssueInvalidStringFormat>): string {
  switch (issue.format) {
    case 'regex':
      return `expected a string matching ${issue.pattern}`;
    case 'starts_with':
      return `expected a string starting with ${renderValue(issue.prefix)}`;
    case 'ends_with':
      return `expected a string ending with ${renderValue(issue.suffix)}`;
    case 'includes':
      return `expected a string containing ${renderValue(issue.includes)}`;
    default:
      return `expected a valid ${issue.format}`;
  }
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  boolean: 'true or false',
  object: 'an object (key: value pairs)',
  array: 'a list',
  int: 'an integer',
  number: 'a number',
};

function describeNumber(schema: z.ZodNumber): string {
  const kind = schema.format?.includes('int') ? 'an integer' : 'a number';
  let min: { value: number; inclusive: boolean } | undefined;
  let max: { value: number; inclusive: boolean } | undefined;
  for (const check of schema._zod.def.checks ?? []) {
    const def = check._zod.def as { check: string; value?: number; inclusive?: boolean };
    if (typeof def.value !== 'number') continue;
    const bound = { value: def.value, inclusive: def.inclusive ?? false };
    if (def.check === 'greater_than' && (min === undefined || bound.value >= min.value)) min = bound;
    if (def.check === 'less_than' && (max === undefined || bound.value <= max.value)) max = bound;
  }
  if (min?.inclusive && max?.inclusive) return `${kind} between ${min.value} and ${max.value}`;
  const limits = [
    min && (min.inclusive ? `at least ${min.value}` : `greater than ${min.value}`),
    max && (max.inclusive ? `at most ${max.value}` : `less than ${max.value}`),
  ].filter((limit) => limit !== undefined);
  return limits.length > 0 ? `${kind} ${limits.join(' and ')}` : kind;
}

const SIZE_UNITS: Record<string, string> = { string: 'characters', array: 'items', set: 'items' };
const COMPARISONS = { too_big: ['less than', 'at most'], too_small: ['more than', 'at least'] } as const;

function describeSize(issue: z.core.$ZodRawIssue<z.core.$ZodIssueTooBig | z.core.$ZodIssueTooSmall>): string {
  const limit = issue.code === 'too_big' ? issue.maximum : issue.minimum;
  const comparison = issue.exact ? 'exactly' : COMPARISONS[issue.code][issue.inclusive ? 1 : 0];
  const unit = SIZE_UNITS[issue.origin];
  return unit === undefined
    ? `expected ${issue.origin} ${comparison} ${limit}`
    : `expected ${comparison} ${limit} ${unit}`;
}

function upperSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}
