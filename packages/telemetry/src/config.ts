import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { configErrorFrom, describeAllowed, type Origins, renderValue } from './config-errors.ts';
import { ConfigError } from './errors.ts';

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions {
  /** One YAML (`.yaml`, `.yml`) or JSON (`.json`) file. Without it, only `defaults` and the env apply. */
  file?: string;
  /** Where overrides are read from. Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Prefix of override variables, upper case and ending in `_`, e.g. `"SWITCHYARD_PROXY_"`. */
  envPrefix: string;
  /** Values beneath the file: objects merge key by key, the file's values win, arrays are replaced. */
  defaults?: unknown;
}

/**
 * Loads a worker's config once at startup: `defaults`, then the file, then env overrides, validated
 * against `schema` and returned deep-frozen.
 *
 * Schemas must declare every object with `z.strictObject()` so that a misspelt key is an error, not
 * a silently ignored setting; a `z.object()` anywhere in the schema is rejected (use
 * `z.looseObject()` to accept unknown keys on purpose).
 *
 * Env override rule: a variable `<envPrefix><SEGMENT>__<SEGMENT>...` sets the field whose path is
 * the segments, each turned from UPPER_SNAKE to camelCase (`MAX_CONNECTIONS` -> `maxConnections`),
 * `__` separating nesting levels. `SWITCHYARD_PROXY_ADMIN__PORT=9500` sets `admin.port`; a numeric
 * segment indexes an array (`UPSTREAMS__0__HOST`). The value is parsed as JSON when it parses
 * (`9500`, `true`, `["a","b"]`, `{"port":1}`, `null`) and kept as a string otherwise (`localhost`);
 * to pass a string that looks like JSON, quote it (`'"12345"'`). Shallower variables apply first, so
 * `ADMIN__PORT` wins over a port inside `ADMIN='{...}'`.
 *
 * @throws ConfigError naming the file or variable, the field path, the value and what is allowed;
 *   one error listing every problem when there are several.
 */
export function loadConfig<S extends z.ZodType>(schema: S, options: LoadConfigOptions): z.infer<S> {
  const { file, env = process.env, envPrefix, defaults } = options;
  if (!/^[A-Z][A-Z0-9_]*_$/.test(envPrefix)) {
    throw new ConfigError(
      'envPrefix',
      `config: envPrefix ${JSON.stringify(envPrefix)} must be upper case and end in "_"`,
    );
  }
  assertStrictObjects(schema._zod.def, '');
  const fromFile = file === undefined ? undefined : readConfigFile(file);
  const merged = mergeUnder(structuredClone(defaults) ?? {}, structuredClone(fromFile));
  const envSources = new Map<string, string>();
  const input = applyEnv(merged, env, envPrefix, envSources);
  const result = schema.safeParse(input, { error: describeAllowed });
  if (!result.success) {
    const where: Origins = { input, file, fromFile, defaults, envSources, envPrefix };
    throw configErrorFrom(result.error.issues, where);
  }
  return deepFreeze(result.data);
}

const DURATION_RULE =
  'expected a duration: a number of milliseconds, or a string such as "500ms", "5s", "2m" or "1h"';
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const MS_PER_UNIT: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** A duration in milliseconds: a number of ms, or `"500ms"`, `"5s"`, `"2m"`, `"1h"` (rounded to whole ms). */
export const durationMs = z
  .union([z.number(), z.string()], { error: DURATION_RULE })
  .transform((value, ctx) => {
    const ms = typeof value === 'number' ? value : parseUnit(value, DURATION, MS_PER_UNIT);
    if (ms !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
    ctx.issues.push({ code: 'custom', message: DURATION_RULE, input: value });
    return z.NEVER;
  });

const BYTE_SIZE_RULE =
  'expected a size in bytes: a whole number, or a string such as "512B", "64KiB", "8MiB", "1GiB" or "1MB"';
const BYTE_SIZE = /^(\d+(?:\.\d+)?)([KMGT]i?B|B)$/i;
const BYTES_PER_UNIT: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** A size in bytes: a whole number, or `"8MiB"` (binary, 1024-based) / `"1MB"` (decimal); rounded to whole bytes. */
export const byteSize = z
  .union([z.number(), z.string()], { error: BYTE_SIZE_RULE })
  .transform((value, ctx) => {
    const bytes = typeof value === 'number' ? value : parseUnit(value, BYTE_SIZE, BYTES_PER_UNIT);
    if (bytes !== undefined && Number.isSafeInteger(bytes) && bytes >= 0) return bytes;
    ctx.issues.push({ code: 'custom', message: BYTE_SIZE_RULE, input: value });
    return z.NEVER;
  });

/** A TCP/UDP port: an integer from 0 to 65535 (0 asks the OS for a free port). */
export const port = z.int().min(0).max(65535);

const HOST_PORT_RULE =
  'expected "host:port" with a port between 0 and 65535, such as "127.0.0.1:9464" or "[::1]:9464"';
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

/** An address as `"host:port"`; an IPv6 host goes in brackets (`"[::1]:9464"`). Kept as the string. */
export const hostPort = z.string().refine((value) => {
  const match = HOST_PORT.exec(value);
  return match !== null && Number(match[1]) <= 65535;
}, HOST_PORT_RULE);

function parseUnit(text: string, pattern: RegExp, perUnit: Record<string, number>): number | undefined {
  const match = pattern.exec(text);
  if (match === null) return undefined;
  const unit = perUnit[match[2]!.toLowerCase()];
  return unit === undefined ? undefined : Math.round(Number(match[1]) * unit);
}

// --- reading ---------------------------------------------------------------------------------

function readConfigFile(file: string): unknown {
  const format = extname(file).toLowerCase();
  if (format !== '.yaml' && format !== '.yml' && format !== '.json') {
    throw new ConfigError(
      '',
      `config error in ${file}: unknown file type "${format}"; use .yaml, .yml or .json`,
    );
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(cause)})`;
    throw new ConfigError('', `config error in ${file}: ${reason}`, { cause });
  }
  return format === '.json' ? parseJson(file, text) : parseYaml(file, text);
}

function parseYaml(file: string, text: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const [first] = doc.errors;
  if (first !== undefined) {
    const { line, col } = lineCounter.linePos(first.pos[0]);
    throw new ConfigError(
      '',
      `config error in ${file}: invalid YAML at line ${line}, column ${col}: ${first.message}`,
    );
  }
  try {
    return doc.toJS() ?? {};
  } catch (cause) {
    throw new ConfigError('', `config error in ${file}: invalid YAML: ${(cause as Error).message}`, {
      cause,
    });
  }
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    const offset = jsonErrorOffset(text);
    const before = text.slice(0, offset).split('\n');
    const line = before.length;
    const col = before[before.length - 1]!.length + 1;
    const reason =
      offset < text.length ? `unexpected ${JSON.stringify(text[offset])}` : 'unexpected end of input';
    throw new ConfigError(
      '',
      `config error in ${file}: invalid JSON at line ${line}, column ${col}: ${reason}`,
      {
        cause,
      },
    );
  }
}

const JSON_WS = /[ \t\n\r]*/y;
// biome-ignore lint/suspicious/noControlCharactersInRegex: RFC 8259 forbids raw control characters in strings.
const JSON_STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const JSON_SCALAR = new RegExp(
  `${JSON_STRING.source}|-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?|true|false|null`,
  'y',
);

/** Offset of the first syntax error in `text`: V8's JSON.parse names it for only some errors. */
function jsonErrorOffset(text: string): number {
  let pos = 0;
  const eat = (pattern: RegExp): boolean => {
    pattern.lastIndex = pos;
    if (!pattern.test(text)) return false;
    pos = pattern.lastIndex;
    return true;
  };
  const value = (): boolean => {
    eat(JSON_WS);
    const open = text[pos];
    if (open !== '{' && open !== '[') return eat(JSON_SCALAR);
    const close = open === '{' ? '}' : ']';
    pos++;
    eat(JSON_WS);
    if (text[pos] === close) {
      pos++;
      return true;
    }
    for (;;) {
      if (open === '{' && !(eat(JSON_WS) && eat(JSON_STRING) && eat(JSON_WS) && text[pos] === ':'))
        return false;
      if (open === '{') pos++;
      if (!value()) return false;
      eat(JSON_WS);
      const next = text[pos];
      if (next !== close && next !== ',') return false;
      pos++;
      if (next === close) return true;
    }
  };
  if (value()) eat(JSON_WS);
  return Math.min(pos, text.length);
}

// --- layering ----------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sets an own data property even for keys such as `__proto__`, which plain assignment would not. */
function setOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

function mergeUnder(base: unknown, top: unknown): unknown {
  if (!isObject(base) || !isObject(top)) return top === undefined ? base : top;
  const merged = { ...base };
  for (const [key, value] of Object.entries(top)) setOwn(merged, key, mergeUnder(merged[key], value));
  return merged;
}

interface EnvOverride {
  name: string;
  path: string[];
  value: unknown;
}

function applyEnv(
  root: unknown,
  env: NodeJS.ProcessEnv,
  prefix: string,
  sources: Map<string, string>,
): unknown {
  const overrides: EnvOverride[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(prefix) || raw === undefined) continue;
    const segments = name.slice(prefix.length).split('__');
    if (segments.some((segment) => !/^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$/.test(segment))) {
      throw new ConfigError(
        '',
        `config error in env ${name}: the name does not spell a field path (${ENV_RULE})`,
      );
    }
    overrides.push({ name, path: segments.map(camelCase), value: parseEnvValue(raw) });
  }
  overrides.sort((a, b) => a.path.length - b.path.length || (a.name < b.name ? -1 : 1));
  for (const override of overrides) {
    setPath(root, override);
    sources.set(override.path.join('.'), override.name);
  }
  return root;
}

const ENV_RULE = 'PREFIX + UPPER_SNAKE segments joined by "__", e.g. SWITCHYARD_PROXY_ADMIN__PORT';

function setPath(root: unknown, { name, path, value }: EnvOverride): void {
  let container = root;
  for (let depth = 0; depth < path.length; depth++) {
    if (typeof container !== 'object' || container === null) {
      const parent = path.slice(0, depth).join('.') || '<root>';
      const field = path.join('.');
      throw new ConfigError(
        field,
        `config error in env ${name}: cannot set ${field} because ${parent} = ${renderValue(container)} is not an object`,
      );
    }
    const key = path[depth]!;
    if (Array.isArray(container) && !/^\d+$/.test(key)) {
      const list = path.slice(0, depth).join('.');
      throw new ConfigError(list, `config error in env ${name}: ${list} is a list; index it with a number`);
    }
    const target = container as Record<string, unknown>;
    if (depth === path.length - 1) setOwn(target, key, value);
    else if (target[key] === undefined) setOwn(target, key, {});
    container = target[key];
  }
}

function camelCase(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, next: string) => next.toUpperCase());
}

function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

// --- schema rules --------------------------------------------------------------------------------

/** Walks a schema's definition and rejects `z.object()`, which strips unknown keys without a word. */
function assertStrictObjects(def: z.core.$ZodTypeDef, path: string, seen = new Set<object>()): void {
  if (seen.has(def)) return;
  seen.add(def);
  const record = def as unknown as Record<string, unknown>;
  if (def.type === 'object' && record.catchall === undefined) {
    throw new ConfigError(
      path,
      `config schema: ${path || '<root>'} is declared with z.object(), which silently drops unknown keys; ` +
        'use z.strictObject() (or z.looseObject() to accept unknown keys on purpose)',
    );
  }
  for (const [field, child] of Object.entries(record)) {
    if (field === 'shape' && isObject(child)) {
      for (const [key, schema] of Object.entries(child))
        visitSchema(schema, path ? `${path}.${key}` : key, seen);
    } else if (Array.isArray(child)) {
      for (const schema of child) visitSchema(schema, path, seen);
    } else {
      visitSchema(child, path, seen);
    }
  }
}

function visitSchema(candidate: unknown, path: string, seen: Set<object>): void {
  if (candidate instanceof z.core.$ZodType) assertStrictObjects(candidate._zod.def, path, seen);
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const child of Object.values(value)) deepFreeze(child);
  return value;
}

/** Splits a validated `hostPort` string: `"[::1]:80"` -> `{ host: '::1', port: 80 }`. */
export function splitHostPort(address: string): { host: string; port: number } {
  const separator = address.lastIndexOf(':');
  const host = address.slice(0, separator).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(separator + 1)) };
}

/**
 * The conventions every worker's config follows. The file comes from `--config <file>`, else from
 * `<envPrefix>CONFIG`; that variable names the file and is no field, so it is left out of the
 * overrides. `SWITCHYARD_DEMO_TRAFFIC=0` turns a demo's synthetic traffic off: it becomes the
 * override `<envPrefix><demoTrafficSwitch>=false` (e.g. `DEMO__TRAFFIC__ENABLED`), applied like
 * any other.
 */
export function workerConfigSource(
  envPrefix: string,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  demoTrafficSwitch?: string,
): { file: string | undefined; overrides: NodeJS.ProcessEnv } {
  const { [`${envPrefix}CONFIG`]: fileFromEnv, ...overrides } = env;
  const flag = argv.indexOf('--config');
  const file = flag >= 0 ? argv[flag + 1] : fileFromEnv || undefined;
  if (demoTrafficSwitch !== undefined && env.SWITCHYARD_DEMO_TRAFFIC === '0') {
    overrides[`${envPrefix}${demoTrafficSwitch}`] = 'false';
  }
  return { file, overrides };
}
