import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '@switchyard/telemetry';
import {
  formatPrivateKey,
  generateNodeKeyPair,
  type NodeKeyPair,
  nodeKeyPairFromSecret,
  parsePrivateKey,
} from './keys.ts';

/**
 * The relay's node key persists in a JSON file in derper's format (`{"PrivateKey": "privkey:<hex>"}`,
 * what `derper -c` reads and writes), so a derper key file can be reused and the relay keeps its
 * identity across restarts. A missing file is created with a fresh key, readable by the owner only.
 */
export function loadOrCreateKeyFile(path: string): { keys: NodeKeyPair; created: boolean } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError('keyFile', `relay key file ${path} cannot be read: ${(error as Error).message}`);
    }
    return { keys: createKeyFile(path), created: true };
  }
  return { keys: parseKeyFile(path, text), created: false };
}

function parseKeyFile(path: string, text: string): NodeKeyPair {
  let privateKey: unknown;
  try {
    privateKey = (JSON.parse(text) as { PrivateKey?: unknown }).PrivateKey;
  } catch {
    throw new ConfigError(
      'keyFile',
      `relay key file ${path} is not JSON; expected {"PrivateKey": "privkey:<64 hex digits>"}`,
    );
  }
  if (typeof privateKey !== 'string') {
    throw new ConfigError(
      'keyFile',
      `relay key file ${path} has no "PrivateKey" string; expected {"PrivateKey": "privkey:<64 hex digits>"}`,
    );
  }
  try {
    return nodeKeyPairFromSecret(parsePrivateKey(privateKey));
  } catch (error) {
    throw new ConfigError('keyFile', `relay key file ${path}: ${(error as Error).message}`);
  }
}

function createKeyFile(path: string): NodeKeyPair {
  const keys = generateNodeKeyPair();
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, `${JSON.stringify({ PrivateKey: formatPrivateKey(keys.secretKey) }, null, 2)}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateKeyFile(path).keys;
    throw new ConfigError('keyFile', `relay key file ${path} cannot be created: ${(error as Error).message}`);
  }
  return keys;
}
