import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '@switchyard/telemetry';
import fc from 'fast-check';
import { DEMO_CONFIG, readProxyConfig } from './config.ts';
import { ProxyConfigError } from './errors.ts';

function writeConfig(config: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'switchyard-proxy-config-')), 'proxy.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

const valid = {
  listeners: [{ name: 'public', listen: '127.0.0.1:8080', pool: 'web' }],
  pools: [{ name: 'web', upstreams: [{ name: 'web-1', address: '10.0.0.1:80' }] }],
};

test('without a file the proxy runs the built-in demo config', () => {
  const config = readProxyConfig([], {});
  assert.equal(config.listeners[0]?.listen, DEMO_CONFIG.listeners[0]?.listen);
  assert.equal(config.pools[0]?.upstreams.length, 3);
  assert.equal(config.demo.backends, true);
  assert.equal(config.demo.traffic.enabled, true);
  assert.equal(config.telemetry.admin.port, 9401);
  assert.equal(readProxyConfig([], { SWITCHYARD_DEMO_TRAFFIC: '0' }).demo.traffic.enabled, false);
});

test('a config file gets the documented defaults and no demo', () => {
  const config = readProxyConfig(['--config', writeConfig(valid)], {});
  const pool = config.pools[0]!;
  assert.equal(pool.policy, 'round_robin');
  assert.equal(pool.maxAttempts, 3);
  assert.equal(pool.dialTimeoutMs, 2000);
  assert.equal(pool.healthCheck.unhealthyThreshold, 3);
  assert.equal(config.listeners[0]?.maxConnections, 10_000);
  assert.equal(config.demo.backends, false);
});

test('a listener routing to an undefined pool is rejected naming both', () => {
  const file = writeConfig({
    ...valid,
    listeners: [{ name: 'public', listen: '127.0.0.1:8080', pool: 'api' }],
  });
  assert.throws(
    () => readProxyConfig(['--config', file], {}),
    (error: unknown) =>
      error instanceof ProxyConfigError &&
      /listeners\.0\.pool: listener "public" routes to pool "api", which is not defined; defined pools: web/.test(
        error.message,
      ),
  );
});

test('duplicate names and a health-check timeout longer than its interval are rejected', () => {
  const twice = { ...valid, pools: [valid.pools[0], valid.pools[0]] };
  assert.throws(() => readProxyConfig(['--config', writeConfig(twice)], {}), /pool name "web" is used twice/);
  const slow = {
    ...valid,
    pools: [{ ...valid.pools[0], healthCheck: { intervalMs: '1s', timeoutMs: '2s' } }],
  };
  assert.throws(
    () => readProxyConfig(['--config', writeConfig(slow)], {}),
    /healthCheck\.timeoutMs: 2000 ms is longer than intervalMs/,
  );
});

/** `pools` pools of `perPool` upstreams each, behind one listener. */
function sized(pools: number, perPool: number) {
  return {
    listeners: [{ name: 'public', listen: '127.0.0.1:8080', pool: 'p0' }],
    pools: Array.from({ length: pools }, (_, p) => ({
      name: `p${p}`,
      upstreams: Array.from({ length: perPool }, (_, i) => ({
        name: `u${i}`,
        address: `10.0.${p}.1:${1 + i}`,
      })),
    })),
  };
}

test('a pool takes up to 1,000 upstreams and the proxy up to 10,000 in all', () => {
  const config = readProxyConfig(['--config', writeConfig(sized(10, 1000))], {});
  assert.equal(
    config.pools.reduce((sum, pool) => sum + pool.upstreams.length, 0),
    10_000,
  );
});

test('1,001 upstreams in a pool or 10,001 in all are refused, naming the count and the limit', () => {
  assert.throws(
    () => readProxyConfig(['--config', writeConfig(sized(1, 1001))], {}),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.field === 'pools.0.upstreams' &&
      /1001 upstreams; at most 1000 in one pool/.test(error.message),
  );
  const tooMany = sized(11, 1000);
  tooMany.pools[10]!.upstreams.length = 1;
  assert.throws(
    () => readProxyConfig(['--config', writeConfig(tooMany)], {}),
    (error: unknown) =>
      error instanceof ProxyConfigError && /10001 upstreams in all; at most 10000/.test(error.message),
  );
});

test('an upstream named "other" is refused: that value is reserved for the metrics', () => {
  const file = writeConfig({
    ...valid,
    pools: [{ name: 'web', upstreams: [{ name: 'other', address: '10.0.0.1:80' }] }],
  });
  assert.throws(
    () => readProxyConfig(['--config', file], {}),
    (error: unknown) => error instanceof ConfigError && /reserved/.test(error.message),
  );
});

const name = fc.oneof(
  fc.constantFrom('web', 'db', 'a', 'other', 'Web', '', 'x'.repeat(70)),
  fc.string({ maxLength: 8 }),
);
const address = fc.oneof(
  fc.constantFrom('127.0.0.1:80', '[::1]:443', 'backend.internal:8080', '127.0.0.1:99999', 'nope', ':80'),
  fc.string({ maxLength: 20 }),
);
const duration = fc.oneof(
  fc.integer({ min: -5, max: 100_000 }),
  fc.constantFrom('5s', '100ms', '2m', 'soon', '-1s'),
);
const randomConfig = fc.record(
  {
    listeners: fc.array(
      fc.record(
        {
          name,
          listen: address,
          pool: name,
          maxConnections: fc.oneof(fc.integer({ min: -1, max: 5 }), fc.constant('many')),
        },
        { requiredKeys: ['name', 'listen', 'pool'] },
      ),
      { maxLength: 3 },
    ),
    pools: fc.array(
      fc.record(
        {
          name,
          policy: fc.constantFrom(
            'round_robin',
            'least_connections',
            'random',
            'first',
            'client_ip_hash',
            'fastest',
          ),
          upstreams: fc.array(fc.record({ name, address }), { maxLength: 4 }),
          dialTimeoutMs: duration,
          maxAttempts: fc.integer({ min: -1, max: 20 }),
          proxyProtocol: fc.constantFrom('none', 'v1', 'v2', 'v3'),
          healthCheck: fc.record(
            { intervalMs: duration, timeoutMs: duration, unhealthyThreshold: fc.integer({ min: 0, max: 5 }) },
            { requiredKeys: [] },
          ),
          passiveHealth: fc.record(
            { maxFailures: fc.integer({ min: 0, max: 5 }), windowMs: duration },
            { requiredKeys: [] },
          ),
          typo: fc.constant(true),
        },
        { requiredKeys: ['name', 'upstreams'] },
      ),
      { maxLength: 3 },
    ),
    shutdownGraceMs: duration,
  },
  { requiredKeys: [] },
);

// Mostly well-formed configs with a random policy, limits and timings: many of these are valid.
const plausibleConfig = fc
  .record({
    policy: fc.constantFrom('round_robin', 'least_connections', 'random', 'first', 'client_ip_hash'),
    upstreams: fc.integer({ min: 1, max: 4 }),
    maxAttempts: fc.integer({ min: 0, max: 17 }),
    intervalMs: fc.integer({ min: 5, max: 5000 }),
    timeoutMs: fc.integer({ min: 1, max: 5000 }),
    proxyProtocol: fc.constantFrom('none', 'v1', 'v2'),
  })
  .map((pick) => ({
    listeners: [{ name: 'public', listen: '127.0.0.1:8080', pool: 'web' }],
    pools: [
      {
        name: 'web',
        policy: pick.policy,
        upstreams: Array.from({ length: pick.upstreams }, (_, i) => ({
          name: `web-${i}`,
          address: `10.0.0.${i + 1}:80`,
        })),
        maxAttempts: pick.maxAttempts,
        proxyProtocol: pick.proxyProtocol,
        healthCheck: { intervalMs: pick.intervalMs, timeoutMs: pick.timeoutMs },
      },
    ],
  }));

test('random configs are either accepted or rejected with a config error naming a field; never a crash', () => {
  let accepted = 0;
  let rejected = 0;
  fc.assert(
    fc.property(fc.oneof(randomConfig, plausibleConfig), (config) => {
      const file = writeConfig(config);
      try {
        const loaded = readProxyConfig(['--config', file], {});
        accepted += 1;
        for (const listener of loaded.listeners) {
          assert.ok(
            loaded.pools.some((pool) => pool.name === listener.pool),
            'an accepted listener routes to a real pool',
          );
        }
      } catch (error) {
        rejected += 1;
        assert.ok(
          error instanceof ConfigError || error instanceof ProxyConfigError,
          `unexpected ${String(error)}`,
        );
        assert.match(error.message, /\S+/);
        assert.ok(error.field !== undefined);
      }
    }),
    { numRuns: 300 },
  );
  // Both outcomes occur, so the property exercised both paths.
  assert.ok(accepted > 0 && rejected > 0, `accepted ${accepted}, rejected ${rejected}`);
});
