import { readFileSync, type StatWatcher, unwatchFile, watchFile } from 'node:fs';
import { ConfigError } from '@switchyard/telemetry';
import { keyId } from './client-connection.ts';
import { parsePublicKey } from './keys.ts';
import type { ClientAdmission } from './relay-server.ts';

export interface AllowListEvents {
  /** After every load attempt after the first: the new key count, or the error that kept the old list. */
  onReload?(result: { keys: number } | { error: ConfigError }): void;
}

/**
 * An allow-list of client keys read from a file: one `nodekey:<64 hex digits>` per line, `#`
 * comments and blank lines ignored. The file is polled (fs.watchFile), which also sees the atomic
 * symlink swap a Kubernetes ConfigMap or Secret volume makes; a file that no longer parses keeps
 * the previous list, so a bad edit never locks every client out.
 */
export class AllowList implements ClientAdmission {
  readonly path: string;
  #keys: ReadonlySet<string>;
  #watcher: StatWatcher | undefined;

  constructor(path: string) {
    this.path = path;
    this.#keys = readAllowList(path);
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
      return undefined;
    } catch (error) {
      return error as ConfigError;
    }
  }

  /** Reloads whenever the file's mtime or size changes, polling every `intervalMs`. */
  watch(intervalMs: number, events: AllowListEvents = {}): void {
    this.#watcher = watchFile(this.path, { interval: intervalMs, persistent: false }, (current, previous) => {
      if (
        current.mtimeMs === previous.mtimeMs &&
        current.size === previous.size &&
        current.ino === previous.ino
      )
        return;
      const error = this.reload();
      events.onReload?.(error === undefined ? { keys: this.size } : { error });
    });
  }

  close(): void {
    if (this.#watcher !== undefined) unwatchFile(this.path);
    this.#watcher = undefined;
  }
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
