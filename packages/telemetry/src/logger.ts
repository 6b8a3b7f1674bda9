import type { Writable } from 'node:stream';
import { ConfigError } from './errors.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;
export type LogMethod = (msg: string, fields?: LogFields) => void;

/** Structured JSON logger: one object per line. Methods below the logger's level do nothing. */
export interface Logger {
  readonly debug: LogMethod;
  readonly info: LogMethod;
  readonly warn: LogMethod;
  readonly error: LogMethod;
  /** A logger whose lines also carry `bindings`; a call's own fields win over them. */
  child(bindings: LogFields): Logger;
}

export interface LoggerOptions {
  /** Written as `name` on every line, e.g. the worker's name. */
  name: string;
  /** Lowest level written. Default: `"info"`. */
  level?: LogLevel;
  /** When given, a non-empty `SWITCHYARD_LOG_LEVEL` in it overrides `level`. */
  env?: NodeJS.ProcessEnv;
  /** Where lines go. Default: `process.stdout`. */
  stream?: Pick<Writable, 'write' | 'writable'>;
}

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const RESERVED_KEYS = new Set(['time', 'level', 'name', 'msg']);
const noop: LogMethod = () => {};

/**
 * Creates a logger writing `{"time","level","name","msg",...bindings,...fields}` lines. A field
 * named like a reserved key is written as `field.<key>`. Error values become
 * `{type, message, code, stack, cause}`, BigInt a decimal string; a field that still cannot be
 * serialised (a cycle, a throwing getter) is replaced by a `"[unserializable: ...]"` string. Log
 * calls never throw.
 *
 * @throws ConfigError when the level (from `level` or `SWITCHYARD_LOG_LEVEL`) is not a known level.
 */
export function createLogger(options: LoggerOptions): Logger {
  const fromEnv = options.env?.SWITCHYARD_LOG_LEVEL;
  const level = fromEnv || options.level || 'info';
  if (!LEVELS.includes(level as LogLevel)) {
    const field = fromEnv ? 'SWITCHYARD_LOG_LEVEL' : 'level';
    throw new ConfigError(
      field,
      `logger: ${field} "${level}" is not allowed: expected one of ${LEVELS.join(', ')}`,
    );
  }
  const sink: Sink = { name: options.name, stream: options.stream ?? process.stdout };
  return makeLogger(sink, LEVELS.indexOf(level as LogLevel), {});
}

interface Sink {
  name: string;
  stream: Pick<Writable, 'write' | 'writable'>;
}

function makeLogger(sink: Sink, minLevel: number, bindings: LogFields): Logger {
  const method = (level: LogLevel): LogMethod =>
    LEVELS.indexOf(level) < minLevel ? noop : (msg, fields) => write(sink, level, msg, bindings, fields);
  return {
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
    child: (more) => makeLogger(sink, minLevel, { ...bindings, ...more }),
  };
}

function write(sink: Sink, level: LogLevel, msg: string, bindings: LogFields, fields?: LogFields): void {
  try {
    if (!sink.stream.writable) return;
    const record: LogFields = { time: new Date().toISOString(), level, name: sink.name, msg };
    copyFields(record, bindings);
    if (fields !== undefined) copyFields(record, fields);
    sink.stream.write(`${serialize(record)}\n`);
  } catch {
    // A log call must not take the worker down: a stream that throws on write loses the line.
  }
}

function copyFields(record: LogFields, fields: LogFields): void {
  for (const key of Object.keys(fields)) {
    const target = RESERVED_KEYS.has(key) ? `field.${key}` : key;
    Object.defineProperty(record, target, {
      value: readField(fields, key),
      enumerable: true,
      configurable: true,
    });
  }
}

function readField(fields: LogFields, key: string): unknown {
  try {
    return fields[key];
  } catch (error) {
    return unserializable(error);
  }
}

function unserializable(error: unknown): string {
  return `[unserializable: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}]`;
}

function serialize(record: LogFields): string {
  try {
    return JSON.stringify(record, replaceValue);
  } catch {
    const safe: LogFields = {};
    for (const key of Object.keys(record)) {
      Object.defineProperty(safe, key, { value: serializableOrMarker(record[key]), enumerable: true });
    }
    return JSON.stringify(safe, replaceValue);
  }
}

function serializableOrMarker(value: unknown): unknown {
  try {
    JSON.stringify(value, replaceValue);
    return value;
  } catch (error) {
    return unserializable(error);
  }
}

function replaceValue(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return serializeError(value);
  return value;
}

function serializeError(error: Error): LogFields {
  const { code } = error as { code?: unknown };
  return { type: error.name, message: error.message, code, stack: error.stack, cause: error.cause };
}
