#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SwitchyardError } from '@switchyard/telemetry';
import { DerpClient } from './derp-client.ts';
import { loadOrCreateKeyFile } from './key-file.ts';
import { formatPublicKey, generateNodeKeyPair, type NodeKeyPair, parsePublicKey } from './keys.ts';

const USAGE = `usage: switchyard-derp <command> --url <relay URL> [options]

Talks DERP to a Switchyard relay or Tailscale's derper. The URL is http(s)://host:port/derp
(Upgrade: DERP) or ws(s)://host:port/derp (WebSocket). Output is one JSON object per line.

commands:
  connect                       log in, print both keys and the server info, exit
  send --to <nodekey:hex>       send a packet: --text <s>, --hex <h>, or stdin; --count <n> repeats it
  recv [--count <n>]            print received packets (source key, size, hex) until n arrived or Ctrl-C
  ping [--count <n>]            ping the relay and print each round-trip time

options:
  --key-file <path>   this client's identity, derper's JSON key format, created when missing;
                      without it, a fresh key per run
  --timeout <ms>      give up after this long waiting for login or packets (default 10000)
`;

class CliUsageError extends SwitchyardError {
  constructor(problem: string) {
    super('SWY_ERR_DERP_CLI_USAGE', `${problem}\n\n${USAGE}`);
  }
}

interface Options {
  readonly url: string;
  readonly keys: NodeKeyPair;
  readonly count: number;
  readonly timeoutMs: number;
  readonly values: Record<string, string | undefined>;
}

function print(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function readOptions(argv: readonly string[]): { command: string; options: Options } {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      'key-file': { type: 'string' },
      to: { type: 'string' },
      text: { type: 'string' },
      hex: { type: 'string' },
      count: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0] ?? '';
  if (values.help === true || command === '') throw new CliUsageError('no command given');
  if (values.url === undefined) throw new CliUsageError('--url is required');
  const count = Number(values.count ?? '1');
  const timeoutMs = Number(values.timeout ?? '10000');
  if (!Number.isSafeInteger(count) || count < 1)
    throw new CliUsageError(`--count ${values.count} is not a positive integer`);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new CliUsageError(`--timeout ${values.timeout} is not a positive number of ms`);
  }
  const keyFile = values['key-file'];
  const keys = keyFile === undefined ? generateNodeKeyPair() : loadOrCreateKeyFile(keyFile).keys;
  return {
    command,
    options: {
      url: values.url,
      keys,
      count,
      timeoutMs,
      values: values as Record<string, string | undefined>,
    },
  };
}

function payloadOf(values: Record<string, string | undefined>): Uint8Array {
  if (values.text !== undefined) return new TextEncoder().encode(values.text);
  if (values.hex !== undefined) {
    if (!/^([0-9a-f]{2})*$/i.test(values.hex))
      throw new CliUsageError('--hex needs an even number of hex digits');
    return Uint8Array.from(Buffer.from(values.hex, 'hex'));
  }
  return Uint8Array.from(readFileSync(0));
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new SwitchyardError('SWY_ERR_DERP_CLI_TIMEOUT', `${what} took longer than ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function run(command: string, options: Options): Promise<void> {
  const { url, keys, count, timeoutMs, values } = options;
  const client = await withTimeout(
    DerpClient.connect({ url, keys, handshakeTimeoutMs: timeoutMs }),
    timeoutMs,
    'login',
  );
  try {
    switch (command) {
      case 'connect':
        print({
          event: 'connected',
          key: formatPublicKey(keys.publicKey),
          serverKey: formatPublicKey(client.serverKey),
          serverVersion: client.serverInfo.version,
        });
        return;
      case 'send': {
        if (values.to === undefined) throw new CliUsageError('send needs --to <nodekey:hex>');
        const destination = parsePublicKey(values.to);
        const packet = payloadOf(values);
        for (let index = 0; index < count; index++) client.send(destination, packet);
        // A pong comes back after the relay has read every packet sent before the ping.
        await withTimeout(client.ping(), timeoutMs, 'waiting for the relay to take the packets');
        print({ event: 'sent', to: values.to, packets: count, bytes: packet.length });
        return;
      }
      case 'recv':
        print({ event: 'listening', key: formatPublicKey(keys.publicKey) });
        for (let index = 0; index < count; index++) {
          const { source, packet } = await withTimeout(client.receive(), timeoutMs, 'waiting for a packet');
          print({
            event: 'packet',
            from: formatPublicKey(source),
            bytes: packet.length,
            hex: Buffer.from(packet).toString('hex'),
          });
        }
        return;
      case 'ping':
        for (let index = 0; index < count; index++) {
          const started = performance.now();
          await withTimeout(client.ping(), timeoutMs, 'ping');
          print({ event: 'pong', rttMs: Number((performance.now() - started).toFixed(3)) });
        }
        return;
      default:
        throw new CliUsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } finally {
    await client.close();
  }
}

try {
  const { command, options } = readOptions(process.argv.slice(2));
  await run(command, options);
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`switchyard-derp: ${message}\n`);
  process.exitCode = error instanceof CliUsageError ? 2 : 1;
}
