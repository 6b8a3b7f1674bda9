import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import {
  ActiveHealthChecker,
  type ActiveHealthCheckerOptions,
  classifyCheckFailure,
  type HealthCheckFailure,
  type HealthCheckTarget,
} from './health-checker.ts';
import { ChangeLog, FakeClock, within } from './health-test-support.ts';
import {
  type ActiveHealthCheckSettings,
  HealthSettingsError,
  type TimerScheduler,
  UpstreamHealth,
} from './upstream-health.ts';

/** Real unref'd timers that remember which are still pending. */
function countingTimers(): TimerScheduler & { live: Set<unknown> } {
  const live = new Set<unknown>();
  return {
    live,
    schedule(callback, delayMs) {
      const timer = setTimeout(() => {
        live.delete(timer);
        callback();
      }, delayMs).unref();
      live.add(timer);
      return timer;
    },
    cancel(handle) {
      clearTimeout(handle as NodeJS.Timeout);
      live.delete(handle);
    },
  };
}

interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly failure: HealthCheckFailure | undefined;
}

/** Collects onResult calls and lets a test wait for the next one that matches. */
class ResultLog {
  readonly results: CheckResult[] = [];
  #waiters: { matches: (result: CheckResult) => boolean; resolve: (result: CheckResult) => void }[] = [];

  readonly onResult = (name: string, ok: boolean, failure?: HealthCheckFailure): void => {
    const result = { name, ok, failure };
    this.results.push(result);
    const waiter = this.#waiters.find((w) => w.matches(result));
    if (waiter === undefined) return;
    this.#waiters = this.#waiters.filter((w) => w !== waiter);
    waiter.resolve(result);
  };

  next(matches: (result: CheckResult) => boolean = () => true): Promise<CheckResult> {
    const waited = new Promise<CheckResult>((resolve) => this.#waiters.push({ matches, resolve }));
    return within(waited, 5000, 'check result');
  }
}

interface Backend extends AsyncDisposable {
  readonly port: number;
  close(): Promise<void>;
}

async function startBackend(onConnection: (socket: Socket) => void = () => {}, port = 0): Promise<Backend> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  const close = async (): Promise<void> => {
    if (!server.listening) return;
    const closed = once(server, 'close');
    server.close();
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  return { port: address.port, close, [Symbol.asyncDispose]: close };
}

async function closedPort(): Promise<number> {
  const backend = await startBackend();
  await backend.close();
  return backend.port;
}

const fastChecks: ActiveHealthCheckSettings = {
  intervalMs: 1000,
  timeoutMs: 200,
  unhealthyThreshold: 1,
  healthyThreshold: 1,
};

function target(
  name: string,
  port: number,
  health = new UpstreamHealth({ active: fastChecks }),
): HealthCheckTarget {
  return { name, host: '127.0.0.1', port, health };
}

/** Runs one check of one target right away and returns its result. */
async function checkOnce(
  port: number,
  settings: Partial<ActiveHealthCheckSettings> = {},
): Promise<CheckResult> {
  const log = new ResultLog();
  await using checker = new ActiveHealthChecker({
    settings: { ...fastChecks, ...settings },
    targets: [target('a', port)],
    onResult: log.onResult,
    maxInitialJitterMs: 0,
  });
  const result = log.next();
  checker.start();
  return await result;
}

const passive = { maxFailures: 3, windowMs: 1000, cooldownMs: 5000 };

test('a check against a listening server passes', async () => {
  await using backend = await startBackend();
  assert.deepEqual(await checkOnce(backend.port), { name: 'a', ok: true, failure: undefined });
});

test('a check against a closed port fails as refused', async () => {
  assert.deepEqual(await checkOnce(await closedPort()), { name: 'a', ok: false, failure: 'refused' });
});

test('a server that accepts and never replies fails an expect check as timeout', async () => {
  await using backend = await startBackend();
  const result = await checkOnce(backend.port, { timeoutMs: 50, expect: Buffer.from('+PONG') });
  assert.equal(result.failure, 'timeout');
});

test('send goes out after connecting and a reply starting with expect passes', async () => {
  const onConnection = (socket: Socket) =>
    socket.on('data', (bytes) => {
      if (bytes.toString() === 'PING\r\n') socket.end('+PONG\r\n');
    });
  await using backend = await startBackend(onConnection);
  const result = await checkOnce(backend.port, {
    send: Buffer.from('PING\r\n'),
    expect: Buffer.from('+PONG'),
  });
  assert.equal(result.ok, true);
});

test('a reply with the wrong prefix fails as unexpected_reply', async () => {
  const onConnection = (socket: Socket) => socket.end('-ERR not ready\r\n');
  await using backend = await startBackend(onConnection);
  const result = await checkOnce(backend.port, { expect: Buffer.from('+PONG') });
  assert.equal(result.failure, 'unexpected_reply');
});

test('a server that closes before the whole expected prefix arrives fails as unexpected_reply', async () => {
  const onConnection = (socket: Socket) => socket.end('+PO');
  await using backend = await startBackend(onConnection);
  const result = await checkOnce(backend.port, { expect: Buffer.from('+PONG') });
  assert.equal(result.failure, 'unexpected_reply');
});

test('socket errors map to the closed set of failure labels', () => {
  const cases: [string | undefined, HealthCheckFailure][] = [
    ['ECONNREFUSED', 'refused'],
    ['ECONNRESET', 'reset'],
    ['EPIPE', 'reset'],
    ['EHOSTUNREACH', 'unreachable'],
    ['ENETUNREACH', 'unreachable'],
    ['EADDRNOTAVAIL', 'unreachable'],
    ['ETIMEDOUT', 'timeout'],
    ['ENOTFOUND', 'unreachable'],
    ['EACCES', 'other'],
    ['constructor', 'other'],
    [undefined, 'other'],
  ];
  for (const [code, failure] of cases) {
    assert.equal(classifyCheckFailure(Object.assign(new Error('x'), { code })), failure, String(code));
  }
  assert.equal(classifyCheckFailure(undefined), 'other');
});

test('a killed backend turns unhealthy after exactly N failed checks and healthy after M once restarted', async () => {
  let backend = await startBackend();
  const settings = { intervalMs: 30, timeoutMs: 30, unhealthyThreshold: 3, healthyThreshold: 2 };
  const changes = new ChangeLog();
  const health = new UpstreamHealth({ active: settings, onChange: changes.onChange });
  /** The run of equal results behind each change, seen from onResult (which runs after recordCheck). */
  const runs: { healthy: boolean; run: number }[] = [];
  let run = 0;
  let runOk = true;
  let healthyBefore = true;
  const log = new ResultLog();
  await using checker = new ActiveHealthChecker({
    settings,
    targets: [target('a', backend.port, health)],
    maxInitialJitterMs: 0,
    onResult(name, ok, failure) {
      run = ok === runOk ? run + 1 : 1;
      runOk = ok;
      if (health.healthy !== healthyBefore) runs.push({ healthy: health.healthy, run });
      healthyBefore = health.healthy;
      log.onResult(name, ok, failure);
    },
  });
  const firstResult = log.next();
  checker.start();
  assert.equal((await firstResult).ok, true);

  const down = changes.next();
  await backend.close();
  assert.equal(await down, false);
  const up = changes.next();
  backend = await startBackend(undefined, backend.port);
  try {
    assert.equal(await up, true);
    assert.deepEqual(runs, [
      { healthy: false, run: 3 },
      { healthy: true, run: 2 },
    ]);
  } finally {
    await checker.stop();
    await backend.close();
  }
});

test('first checks are spread by a jitter below maxInitialJitterMs', () => {
  const clock = new FakeClock();
  const draws = [0.5, 0.1, 0.9];
  const checker = new ActiveHealthChecker({
    settings: fastChecks,
    targets: [target('a', 1), target('b', 2), target('c', 3)],
    maxInitialJitterMs: 1000,
    random: () => draws.shift()!,
    now: clock.now,
    timers: clock,
  });
  checker.start();
  assert.deepEqual([...clock.pending.values()], [500, 100, 900]);
  void checker.stop();
  assert.equal(clock.pending.size, 0);
});

test('by default the first checks of many targets are spread over the whole interval, not its first second', () => {
  const clock = new FakeClock();
  const targets = Array.from({ length: 1000 }, (_, i) => target(`u${i}`, 1 + i));
  let draw = 0;
  const checker = new ActiveHealthChecker({
    settings: { ...fastChecks, intervalMs: 30_000 },
    targets,
    random: () => (draw++ % 1000) / 1000,
    now: clock.now,
    timers: clock,
  });
  checker.start();
  const perTenth = new Array<number>(10).fill(0);
  for (const delayMs of clock.pending.values()) {
    assert.ok(delayMs >= 0 && delayMs < 30_000, `first check after ${delayMs} ms`);
    perTenth[Math.floor(delayMs / 3_000)]! += 1;
  }
  assert.deepEqual(
    perTenth,
    new Array(10).fill(100),
    'each tenth of the interval starts a tenth of the checks',
  );
  void checker.stop();
});

test('the next check is scheduled only once the previous one has finished', async () => {
  const clock = new FakeClock();
  const serverSide = Promise.withResolvers<Socket>();
  await using backend = await startBackend(serverSide.resolve);
  const log = new ResultLog();
  await using checker = new ActiveHealthChecker({
    settings: { ...fastChecks, timeoutMs: 300, expect: Buffer.from('+PONG') },
    targets: [target('a', backend.port)],
    onResult: log.onResult,
    maxInitialJitterMs: 0,
    now: clock.now,
    timers: clock,
  });
  checker.start();
  clock.advance(0);
  const socket = await within(serverSide.promise, 5000, 'probe connection');
  assert.deepEqual([...clock.pending.values()], [300], 'only the probe deadline is pending');
  const result = log.next();
  socket.write('+PONG');
  assert.equal((await result).ok, true);
  assert.deepEqual([...clock.pending.values()], [1000], 'the next check, intervalMs after this one started');
});

test('setTargets keeps the schedule of unchanged targets, starts new ones and stops removed ones', async () => {
  const clock = new FakeClock();
  const a = target('a', 1);
  const checker = new ActiveHealthChecker({
    settings: fastChecks,
    targets: [a, target('b', 2)],
    maxInitialJitterMs: 100,
    random: () => 0.5,
    now: clock.now,
    timers: clock,
  });
  checker.start();
  const [aTimer, bTimer] = [...clock.pending.keys()];
  checker.setTargets([{ ...a }, target('c', 3)]);
  const pending = [...clock.pending.keys()];
  assert.ok(pending.includes(aTimer!), 'a keeps its timer');
  assert.ok(!pending.includes(bTimer!), 'b is stopped');
  assert.equal(pending.length, 2, 'c is started');
  checker.setTargets([{ ...a, port: 4 }]);
  assert.ok(!clock.pending.has(aTimer!), 'a changed port, so it restarts');
  await checker.stop();
  assert.equal(clock.pending.size, 0);
});

test('a removed target has its in-flight probe aborted and never reported', async () => {
  const clock = new FakeClock();
  const serverSide = Promise.withResolvers<Socket>();
  await using backend = await startBackend(serverSide.resolve);
  const log = new ResultLog();
  await using checker = new ActiveHealthChecker({
    settings: { ...fastChecks, expect: Buffer.from('+PONG') },
    targets: [target('a', backend.port)],
    onResult: log.onResult,
    maxInitialJitterMs: 0,
    now: clock.now,
    timers: clock,
  });
  checker.start();
  clock.advance(0);
  const socket = await within(serverSide.promise, 5000, 'probe connection');
  const probeClosed = once(socket, 'close');
  checker.setTargets([]);
  await within(probeClosed, 5000, 'probe close');
  await checker.stop();
  assert.deepEqual(log.results, []);
  assert.equal(clock.pending.size, 0);
});

/** Socket handles still open; libuv runs handle close callbacks a loop turn after the 'close' events. */
async function socketResources(): Promise<string[]> {
  for (let turn = 0; turn < 3; turn++) await new Promise(setImmediate);
  return process
    .getActiveResourcesInfo()
    .filter((name) => name.startsWith('TCP') || name === 'ConnectWrap')
    .sort();
}

test('stop() aborts an in-flight probe and leaves no timers or sockets behind', async () => {
  const before = await socketResources();
  const timers = countingTimers();
  const serverSide = Promise.withResolvers<Socket>();
  const backend = await startBackend(serverSide.resolve);
  const log = new ResultLog();
  const checker = new ActiveHealthChecker({
    settings: {
      intervalMs: 5000,
      timeoutMs: 5000,
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      expect: Buffer.from('+PONG'),
    },
    targets: [target('a', backend.port), target('b', await closedPort())],
    onResult: log.onResult,
    maxInitialJitterMs: 0,
    timers,
  });
  const refused = log.next((result) => result.name === 'b');
  checker.start();
  await within(serverSide.promise, 5000, 'probe connection');
  await refused;
  assert.ok(timers.live.size > 0);
  await checker.stop();
  assert.equal(timers.live.size, 0, 'no timers pending');
  assert.deepEqual(
    log.results.map((r) => r.name),
    ['b'],
  );
  await backend.close();
  assert.deepEqual(await socketResources(), before);
});

test('health timers never keep the process alive', async () => {
  const moduleUrl = (path: string) => pathToFileURL(new URL(path, import.meta.url).pathname).href;
  const script = `
    import { ActiveHealthChecker } from ${JSON.stringify(moduleUrl('./health-checker.ts'))};
    import { UpstreamHealth } from ${JSON.stringify(moduleUrl('./upstream-health.ts'))};
    const health = new UpstreamHealth({ passive: { maxFailures: 1, windowMs: 1000, cooldownMs: 600000 } });
    health.recordDialFailure();
    new ActiveHealthChecker({
      settings: { intervalMs: 600000, timeoutMs: 1000, unhealthyThreshold: 3, healthyThreshold: 2 },
      targets: [{ name: 'a', host: '127.0.0.1', port: 9, health }],
      maxInitialJitterMs: 600000,
      random: () => 0.99,
    }).start();
    console.log(health.healthy);
  `;
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 8000 }, (error, stdout) =>
      resolve({ code: error === null ? 0 : (error.code as number | null), stdout }),
    );
  });
  assert.deepEqual({ code, stdout: stdout.trim() }, { code: 0, stdout: 'false' });
});

test('invalid settings throw HealthSettingsError naming the field, the value and what is allowed', () => {
  const health = new UpstreamHealth({ active: fastChecks });
  const cases: [string, () => unknown, string, unknown][] = [
    ['zero interval', () => checker({ intervalMs: 0 }), 'intervalMs', 0],
    ['fractional timeout', () => checker({ timeoutMs: 1.5 }), 'timeoutMs', 1.5],
    ['timeout above interval', () => checker({ timeoutMs: 1001 }), 'timeoutMs', 1001],
    ['zero fall', () => checker({ unhealthyThreshold: 0 }), 'unhealthyThreshold', 0],
    [
      'zero rise',
      () => new UpstreamHealth({ active: { unhealthyThreshold: 1, healthyThreshold: 0 } }),
      'healthyThreshold',
      0,
    ],
    ['empty expect', () => checker({ expect: Buffer.alloc(0) }), 'expect', Buffer.alloc(0)],
    ['string send', () => checker({ send: 'PING' as unknown as Buffer }), 'send', 'PING'],
    [
      'zero maxFailures',
      () => new UpstreamHealth({ passive: { ...passive, maxFailures: 0 } }),
      'maxFailures',
      0,
    ],
    ['negative window', () => new UpstreamHealth({ passive: { ...passive, windowMs: -1 } }), 'windowMs', -1],
    [
      'NaN cool-down',
      () => new UpstreamHealth({ passive: { ...passive, cooldownMs: Number.NaN } }),
      'cooldownMs',
      Number.NaN,
    ],
    ['negative jitter', () => checker({}, { maxInitialJitterMs: -1 }), 'maxInitialJitterMs', -1],
    [
      'duplicate name',
      () => checker({}, { targets: [target('a', 1, health), target('a', 2, health)] }),
      'targets[1].name',
      'a',
    ],
    ['port 0', () => checker({}, { targets: [target('a', 0, health)] }), 'targets[0].port', 0],
    ['port 70000', () => checker({}, { targets: [target('a', 70000, health)] }), 'targets[0].port', 70000],
    [
      'health with other thresholds',
      () => checker({}, { targets: [target('a', 1, new UpstreamHealth())] }),
      'targets[0].health',
      'fall 3, rise 2',
    ],
  ];
  for (const [what, build, field, value] of cases) {
    assert.throws(build, (error: unknown) => {
      assert.ok(error instanceof HealthSettingsError, what);
      assert.equal(error.code, 'SWY_ERR_PROXY_HEALTH_SETTINGS');
      assert.equal(error.field, field, what);
      assert.deepEqual(error.value, value, what);
      assert.match(error.message, new RegExp(`${field.replace(/[[\]]/g, '\\$&')} is .+; expected`), what);
      return true;
    });
  }
  assert.match(
    (() => {
      try {
        checker({ timeoutMs: 1001 });
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    })(),
    /timeoutMs is 1001; expected at most intervalMs \(1000\)/,
  );
});

function checker(
  settings: Partial<ActiveHealthCheckSettings>,
  options: Partial<ActiveHealthCheckerOptions> = {},
): ActiveHealthChecker {
  return new ActiveHealthChecker({ settings: { ...fastChecks, ...settings }, targets: [], ...options });
}
