import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { z } from 'zod';
import { byteSize, durationMs, hostPort, type LoadConfigOptions, loadConfig, port } from './config.ts';
import { ConfigError } from './errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'switchyard-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function writeConfig(extension: string, text: string): string {
  const file = join(dir, `config-${++fileCount}${extension}`);
  writeFileSync(file, text);
  return file;
}

const proxySchema = z.strictObject({
  listen: hostPort,
  upstreamName: z.string().optional(),
  idleTimeout: durationMs.default(30_000),
  admin: z.strictObject({ port, host: z.string().default('127.0.0.1') }),
  apiToken: z.string().min(16).optional(),
});

const PREFIX = 'SWITCHYARD_PROXY_';

function load(options: Partial<LoadConfigOptions>) {
  return loadConfig(proxySchema, { env: {}, envPrefix: PREFIX, ...options });
}

function configErrorOf(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, 'SWY_ERR_CONFIG');
    return error;
  }
  assert.fail('expected a ConfigError');
}

const validYaml = 'listen: 0.0.0.0:8080\nidleTimeout: 5s\nadmin:\n  port: 9464\n';

describe('loadConfig', () => {
  test('loads a YAML file and applies schema defaults', () => {
    const config = load({ file: writeConfig('.yaml', validYaml) });
    assert.deepEqual(config, {
      listen: '0.0.0.0:8080',
      idleTimeout: 5000,
      admin: { port: 9464, host: '127.0.0.1' },
    });
  });

  test('loads a JSON file', () => {
    const file = writeConfig('.json', JSON.stringify({ listen: '[::1]:8080', admin: { port: 9464 } }));
    assert.deepEqual(load({ file }), {
      listen: '[::1]:8080',
      idleTimeout: 30_000,
      admin: { port: 9464, host: '127.0.0.1' },
    });
  });

  test('an env variable overrides a nested number from the file', () => {
    const file = writeConfig('.yaml', validYaml);
    const config = load({ file, env: { SWITCHYARD_PROXY_ADMIN__PORT: '9500' } });
    assert.equal(config.admin.port, 9500);
  });

  test('an env value that is not JSON is kept as a string', () => {
    const file = writeConfig('.yaml', validYaml);
    const config = load({ file, env: { SWITCHYARD_PROXY_ADMIN__HOST: '0.0.0.0' } });
    assert.equal(config.admin.host, '0.0.0.0');
  });

  test('an UPPER_SNAKE env segment sets the camelCase key', () => {
    const file = writeConfig('.yaml', validYaml);
    const config = load({ file, env: { SWITCHYARD_PROXY_UPSTREAM_NAME: 'eu-west' } });
    assert.equal(config.upstreamName, 'eu-west');
  });

  test('works from env and defaults alone when no file is given', () => {
    const config = load({
      defaults: { listen: '127.0.0.1:8080', admin: { port: 9464 } },
      env: { SWITCHYARD_PROXY_LISTEN: '0.0.0.0:9000' },
    });
    assert.equal(config.listen, '0.0.0.0:9000');
    assert.equal(config.admin.port, 9464);
  });

  test('file values win over defaults key by key', () => {
    const file = writeConfig('.yaml', 'listen: 0.0.0.0:8080\nadmin:\n  port: 9500\n');
    const config = load({ file, defaults: { admin: { port: 1, host: '10.0.0.1' } } });
    assert.deepEqual(config.admin, { port: 9500, host: '10.0.0.1' });
  });

  test('the result is deep-frozen', () => {
    const config = load({ file: writeConfig('.yaml', validYaml) });
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.admin));
    assert.throws(() => {
      (config.admin as { port: number }).port = 1;
    }, TypeError);
  });

  test('a bad file value is rejected naming the file, field, value and what is allowed', () => {
    const file = writeConfig('.yaml', 'listen: 0.0.0.0:8080\nadmin:\n  port: 70000\n');
    const error = configErrorOf(() => load({ file }));
    assert.equal(error.field, 'admin.port');
    assert.equal(
      error.message,
      `config error in ${file}: admin.port = 70000 is not allowed: expected an integer between 0 and 65535`,
    );
  });

  test('a bad env value is rejected naming the env variable as its source', () => {
    const file = writeConfig('.yaml', validYaml);
    const error = configErrorOf(() => load({ file, env: { SWITCHYARD_PROXY_ADMIN__PORT: '"http"' } }));
    assert.match(error.message, /^config error in env SWITCHYARD_PROXY_ADMIN__PORT: /);
    assert.match(
      error.message,
      /admin\.port = "http" is not allowed: expected an integer between 0 and 65535/,
    );
  });

  test('an unknown key in the file is rejected naming the key and the allowed keys', () => {
    const file = writeConfig('.yaml', 'listen: 0.0.0.0:8080\nadmin:\n  port: 9464\n  prot: 9500\n');
    const error = configErrorOf(() => load({ file }));
    assert.equal(error.field, 'admin.prot');
    assert.match(error.message, new RegExp(`^config error in ${file}: admin\\.prot = 9500 is not allowed`));
    assert.match(error.message, /unknown key; the keys allowed here are port, host/);
  });

  test('a misspelt env variable is rejected, not ignored', () => {
    const file = writeConfig('.yaml', validYaml);
    const error = configErrorOf(() => load({ file, env: { SWITCHYARD_PROXY_ADMIN__PROT: '9500' } }));
    assert.match(
      error.message,
      /env SWITCHYARD_PROXY_ADMIN__PROT: admin\.prot = 9500 is not allowed: unknown key/,
    );
  });

  test('several problems are listed one per line under a summary', () => {
    const file = writeConfig('.yaml', 'listen: nowhere\nidleTimeout: soon\nadmin:\n  port: -1\n');
    const lines = configErrorOf(() => load({ file })).message.split('\n');
    assert.deepEqual(lines, [
      `config error: 3 problems in ${file}`,
      `  in ${file}: listen = "nowhere" is not allowed: expected "host:port" with a port between 0 and 65535, such as "127.0.0.1:9464" or "[::1]:9464"`,
      `  in ${file}: idleTimeout = "soon" is not allowed: expected a duration: a number of milliseconds, or a string such as "500ms", "5s", "2m" or "1h"`,
      `  in ${file}: admin.port = -1 is not allowed: expected an integer between 0 and 65535`,
    ]);
  });

  test('a missing required field is named along with the env variable that would set it', () => {
    const file = writeConfig('.yaml', 'listen: 0.0.0.0:8080\n');
    const error = configErrorOf(() => load({ file }));
    assert.equal(error.field, 'admin');
    assert.match(
      error.message,
      /admin is missing: expected an object .*set it in the file or with SWITCHYARD_PROXY_ADMIN$/,
    );
  });

  test('a long offending value is truncated in the message', () => {
    const file = writeConfig('.yaml', `${validYaml}upstreamName: [${'"x", '.repeat(100)}"x"]\n`);
    const message = configErrorOf(() => load({ file })).message;
    const shown = /upstreamName = (.*) is not allowed/.exec(message)?.[1] ?? '';
    assert.equal(shown.length, 80);
    assert.ok(shown.endsWith('...'));
  });

  test('a secret-looking field shows its value redacted', () => {
    const file = writeConfig('.yaml', validYaml);
    const error = configErrorOf(() => load({ file, env: { SWITCHYARD_PROXY_API_TOKEN: 'hunter2' } }));
    assert.match(error.message, /apiToken = <redacted> is not allowed: expected at least 16 characters/);
    assert.doesNotMatch(error.message, /hunter2/);
  });

  test('a number-like env value for a string field comes with a hint to quote it', () => {
    const file = writeConfig('.yaml', validYaml);
    const error = configErrorOf(() => load({ file, env: { SWITCHYARD_PROXY_UPSTREAM_NAME: '12345' } }));
    assert.match(error.message, /upstreamName = 12345 is not allowed: expected a string .*quote it/);
  });

  test('an env name with an empty path segment is rejected', () => {
    const error = configErrorOf(() => load({ env: { SWITCHYARD_PROXY_ADMIN___PORT: '1' } }));
    assert.match(error.message, /env SWITCHYARD_PROXY_ADMIN___PORT: the name does not spell a field path/);
  });

  test('a missing file is named in the error', () => {
    const file = join(dir, 'absent.yaml');
    const error = configErrorOf(() => load({ file }));
    assert.equal(error.message, `config error in ${file}: file not found`);
  });

  test('a YAML syntax error names the file, line and column', () => {
    const file = writeConfig('.yml', 'listen: 0.0.0.0:8080\nadmin:\n  port: 1\n  port: 2\n');
    const error = configErrorOf(() => load({ file }));
    assert.match(error.message, new RegExp(`^config error in ${file}: invalid YAML at line 4, column 3: `));
  });

  test('a JSON syntax error names the file, line and column', () => {
    const file = writeConfig('.json', '{\n  "listen": "0.0.0.0:8080",\n  "admin": { "port": x }\n}\n');
    const error = configErrorOf(() => load({ file }));
    assert.equal(error.message, `config error in ${file}: invalid JSON at line 3, column 22: unexpected "x"`);
  });

  test('a file with an unknown extension is rejected', () => {
    const file = writeConfig('.toml', 'listen = "0.0.0.0:8080"\n');
    assert.match(
      configErrorOf(() => load({ file })).message,
      /unknown file type "\.toml"; use \.yaml, \.yml or \.json/,
    );
  });

  test('a schema that uses z.object() is rejected because it would drop unknown keys', () => {
    const lax = z.strictObject({ admin: z.object({ port }) });
    const error = configErrorOf(() => loadConfig(lax, { env: {}, envPrefix: PREFIX }));
    assert.equal(error.field, 'admin');
    assert.match(error.message, /admin is declared with z\.object\(\).*use z\.strictObject\(\)/);
  });

  test('any port outside 0..65535 is rejected naming the field and the value', () => {
    const outOfRange = fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 65_536 }));
    fc.assert(
      fc.property(outOfRange, (value) => {
        const env = { SWITCHYARD_PROXY_LISTEN: '0.0.0.0:8080', SWITCHYARD_PROXY_ADMIN__PORT: String(value) };
        const error = configErrorOf(() => load({ env }));
        assert.equal(error.field, 'admin.port');
        assert.ok(error.message.includes(`admin.port = ${value} is not allowed`), error.message);
      }),
    );
  });
});

describe('durationMs', () => {
  test('parses numbers of ms and strings with ms, s, m and h units', () => {
    assert.equal(durationMs.parse(250), 250);
    assert.equal(durationMs.parse('500ms'), 500);
    assert.equal(durationMs.parse('1.5s'), 1500);
    assert.equal(durationMs.parse('2m'), 120_000);
    assert.equal(durationMs.parse('1h'), 3_600_000);
  });

  test('rejects negative, unitless and unknown-unit values', () => {
    for (const value of [-1, '5', '5x', '5 s', '-5s', true]) {
      assert.equal(durationMs.safeParse(value).success, false, `accepted ${JSON.stringify(value)}`);
    }
  });

  test('round-trips any "<n>ms" to n', () => {
    fc.assert(fc.property(fc.maxSafeNat(), (n) => durationMs.parse(`${n}ms`) === n));
  });
});

describe('byteSize', () => {
  test('parses whole numbers and binary and decimal units', () => {
    assert.equal(byteSize.parse(1024), 1024);
    assert.equal(byteSize.parse('512B'), 512);
    assert.equal(byteSize.parse('8MiB'), 8 * 1024 * 1024);
    assert.equal(byteSize.parse('1MB'), 1_000_000);
    assert.equal(byteSize.parse('1.5KiB'), 1536);
  });

  test('rejects fractional numbers, negatives and unknown units', () => {
    for (const value of [1.5, -1, '8', '8XB', '8 MiB', '-1KiB']) {
      assert.equal(byteSize.safeParse(value).success, false, `accepted ${JSON.stringify(value)}`);
    }
  });
});

describe('hostPort', () => {
  test('accepts host:port with a name, an IPv4 or a bracketed IPv6 host', () => {
    for (const value of ['localhost:80', '0.0.0.0:0', '[::1]:65535', 'relay-1.example.com:443']) {
      assert.equal(hostPort.parse(value), value);
    }
  });

  test('rejects a missing host, a missing port and a port above 65535', () => {
    for (const value of [':80', 'localhost', 'localhost:', 'localhost:65536', '::1:80']) {
      assert.equal(hostPort.safeParse(value).success, false, `accepted ${value}`);
    }
  });
});
