import { readFileSync, type Stats, stat, statSync } from 'node:fs';
import { ConfigError, type CountCell, type GaugeCell } from '@switchyard/telemetry';
import { keyId } from './client-connection.ts';
import { parsePublicKey } from './keys.ts';
import type { RelayMetrics } from './metrics.ts';
import type { ClientAdmission } from './relay-server.ts';

export interface AllowListEvents {
  /** After every load attempt after the first: the new key count, or the error that kept the old list. */
  onReload?(result: { keys: number } | { error: ConfigError }): void;
}

/**
 * An allow-list of client keys read from a file: one `nodekey:<64 hex digits>` per line, `#`
 * comments and blank lines ignored. The file is polled with stat (following symlinks), which also
 * sees the atomic symlink swap a Kubernetes ConfigMap or Secret volume makes; a file that no
 * longer parses keeps the previous list, so a bad edit never locks every client out. It keeps
 * `admission_list_keys` at the size of the list in force and counts every reload by result.
 */
export class AllowList implements ClientAdmission {
  readonly path: string;
  readonly #cells: {
    readonly keys: GaugeCell;
    readonly reloadSuccesses: CountCell;
    readonly reloadFailures: CountCell;
  };
  #keys: ReadonlySet<string>;
  #poller: NodeJS.Timeout | undefined;

  constructor(path: string, metrics: RelayMetrics) {
    this.path = path;
    this.#keys = readAllowList(path);
    const reloads = metrics.admission_list_reloads;
    this.#cells = {
      keys: metrics.admission_list_keys.cell(),
      reloadSuccesses: reloads.cell({ result: 'success' }),
      reloadFailures: reloads.cell({ result: 'failure' }),
    };
    this.#cells.keys.set(this.#keys.size);
  }

  get size(): number {
    return this.#keys.size;
  }

  allows(clientPublic: Uint8Array): boolean {
    return this.#keys.has(keyId(clientPublic));
  }

  /** Reads the file again; returns the error, and keeps the old list, when it does not parse. */
  reload(): ConfigError | undefined {
    try {
      this.#keys = readAllowList(this.path);
    } catch (error) {
      this.#cells.reloadFailures.add();
      return error as ConfigError;
    }
    this.#cells.reloadSuccesses.add();
    this.#cells.keys.set(this.#keys.size);
    return undefined;
  }

  /**
   * Reloads whenever the file's inode, size or mtime differs from the previous poll's, polling
   * every `intervalMs`; the first baseline is taken now, so a change made after this call is seen.
   */
  watch(intervalMs: number, events: AllowListEvents = {}): void {
    let previous: Stats | undefined = statOrUndefined(this.path);
    this.#poller = setInterval(() => {
      stat(this.path, (error, current) => {
        const now = error === null ? current : undefined;
        if (sameFile(previous, now)) return;
        previous = now;
        const failure = this.reload();
        events.onReload?.(failure === undefined ? { keys: this.size } : { error: failure });
      });
    }, intervalMs);
    this.#poller.unref();
  }

  close(): void {
    clearInterval(this.#poller);
    this.#poller = undefined;
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function sameFile(a: Stats | undefined, b: Stats | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

function readAllowList(path: string): ReadonlySet<string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      'admission.allowListFile',
      `allow-list ${path} cannot be read: ${(error as Error).message}`,
    );
  }
  const keys = new Set<string>();
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!.replace(/#.*/, '').trim();
    if (line === '') continue;
    try {
      keys.add(keyId(parsePublicKey(line)));
    } catch {
      throw new ConfigError(
        'admission.allowListFile',
        `allow-list ${path} line ${index + 1} is not a node key; expected nodekey:<64 hex digits>`,
      );
    }
  }
  return keys;
}
