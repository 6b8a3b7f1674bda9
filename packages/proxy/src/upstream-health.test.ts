import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ChangeLog, FakeClock } from './health-test-support.ts';
import { UpstreamHealth } from './upstream-health.ts';

function fakeHealth(clock: FakeClock, options: ConstructorParameters<typeof UpstreamHealth>[0] = {}) {
  const log = new ChangeLog();
  const health = new UpstreamHealth({ now: clock.now, timers: clock, onChange: log.onChange, ...options });
  return { health, log };
}

const passive = { maxFailures: 3, windowMs: 1000, cooldownMs: 5000 };

test('turns unhealthy after exactly unhealthyThreshold consecutive failures and not before', () => {
  const { health, log } = fakeHealth(new FakeClock(), {
    active: { unhealthyThreshold: 3, healthyThreshold: 2 },
  });
  health.recordCheck(false);
  health.recordCheck(false);
  assert.equal(health.healthy, true);
  health.recordCheck(false);
  assert.equal(health.healthy, false);
  assert.deepEqual(log.changes, [{ healthy: false, cause: 'active' }]);
});

test('turns healthy again after exactly healthyThreshold consecutive successes', () => {
  const { health, log } = fakeHealth(new FakeClock(), {
    active: { unhealthyThreshold: 1, healthyThreshold: 3 },
    initiallyHealthy: false,
  });
  health.recordCheck(true);
  health.recordCheck(true);
  assert.equal(health.healthy, false);
  health.recordCheck(true);
  assert.equal(health.healthy, true);
  assert.deepEqual(log.changes, [{ healthy: true, cause: 'active' }]);
});

test('a success resets the failure streak and a failure resets the success streak', () => {
  const { health } = fakeHealth(new FakeClock(), { active: { unhealthyThreshold: 2, healthyThreshold: 2 } });
  for (const ok of [false, true, false, true, false]) health.recordCheck(ok);
  assert.equal(health.healthy, true);
  health.recordCheck(false);
  assert.equal(health.healthy, false);
  for (const ok of [true, false, true, false, true]) health.recordCheck(ok);
  assert.equal(health.healthy, false);
});

test('starts healthy by default and unhealthy when initiallyHealthy is false', () => {
  assert.equal(new UpstreamHealth().healthy, true);
  assert.equal(new UpstreamHealth({ initiallyHealthy: false }).healthy, false);
});

/** The verdict after each result, from runs: a flip needs `threshold` opposite results since the last flip. */
function referenceVerdicts(results: boolean[], fall: number, rise: number, initial: boolean): boolean[] {
  let healthy = initial;
  let lastFlip = -1;
  return results.map((_, i) => {
    const runStart = i - (healthy ? fall : rise) + 1;
    if (runStart > lastFlip && results.slice(runStart, i + 1).every((ok) => ok !== healthy)) {
      healthy = !healthy;
      lastFlip = i;
    }
    return healthy;
  });
}

test('for any sequence of check results the verdict and its changes equal the rise/fall reference', () => {
  fc.assert(
    fc.property(
      fc.array(fc.boolean(), { maxLength: 150 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 6 }),
      fc.boolean(),
      (results, fall, rise, initial) => {
        const { health, log } = fakeHealth(new FakeClock(), {
          active: { unhealthyThreshold: fall, healthyThreshold: rise },
          initiallyHealthy: initial,
        });
        const expected = referenceVerdicts(results, fall, rise, initial);
        const observed = results.map((ok) => {
          health.recordCheck(ok);
          return health.healthy;
        });
        assert.deepEqual(observed, expected);
        const flips = expected.filter((healthy, i) => healthy !== (i === 0 ? initial : expected[i - 1]));
        assert.deepEqual(
          log.changes,
          flips.map((healthy) => ({ healthy, cause: 'active' })),
        );
      },
    ),
    { numRuns: 300 },
  );
});

test('maxFailures dial failures within the window make the upstream unhealthy for the cool-down', () => {
  const clock = new FakeClock();
  const { health, log } = fakeHealth(clock, { passive });
  health.recordDialFailure();
  clock.advance(500);
  health.recordDialFailure();
  clock.advance(499);
  assert.equal(health.healthy, true);
  health.recordDialFailure();
  assert.equal(health.healthy, false);
  assert.deepEqual(log.changes, [{ healthy: false, cause: 'passive' }]);
  clock.advance(4999);
  assert.equal(health.healthy, false);
});

test('dial failures spread wider than the window do not eject', () => {
  const clock = new FakeClock();
  const { health, log } = fakeHealth(clock, { passive });
  for (let i = 0; i < 10; i++) {
    health.recordDialFailure();
    clock.advance(500);
  }
  assert.equal(health.healthy, true);
  assert.deepEqual(log.changes, []);
});

test('a dial success ends the run of dial failures', () => {
  const clock = new FakeClock();
  const { health } = fakeHealth(clock, { passive });
  health.recordDialFailure();
  health.recordDialFailure();
  health.recordDialSuccess();
  health.recordDialFailure();
  health.recordDialFailure();
  assert.equal(health.healthy, true);
  health.recordDialFailure();
  assert.equal(health.healthy, false);
});

test('the end of a cool-down fires onChange from its timer, without any traffic or reads', () => {
  const clock = new FakeClock();
  const { health, log } = fakeHealth(clock, { passive: { ...passive, maxFailures: 1 } });
  health.recordDialFailure();
  assert.deepEqual([...clock.pending.values()], [5000]);
  clock.advance(5000);
  assert.deepEqual(log.changes, [
    { healthy: false, cause: 'passive' },
    { healthy: true, cause: 'cooldown_over' },
  ]);
  assert.equal(clock.pending.size, 0);
});

test('the end of a cool-down is noticed on the next read of healthy even before its timer runs', () => {
  const clock = new FakeClock();
  const { health, log } = fakeHealth(clock, { passive: { ...passive, maxFailures: 1 } });
  health.recordDialFailure();
  clock.nowMs += 5000;
  assert.equal(health.healthy, true);
  assert.deepEqual(log.changes.at(-1), { healthy: true, cause: 'cooldown_over' });
  assert.equal(clock.pending.size, 0, 'the cool-down timer is cancelled');
});

test('dial failures during a cool-down do not extend it', () => {
  const clock = new FakeClock();
  const { health } = fakeHealth(clock, { passive: { ...passive, maxFailures: 1 } });
  health.recordDialFailure();
  clock.advance(4000);
  health.recordDialFailure();
  clock.advance(1000);
  assert.equal(health.healthy, true);
});

test('a cool-down ending while active checks say unhealthy fires no change', () => {
  const clock = new FakeClock();
  const { health, log } = fakeHealth(clock, {
    passive: { ...passive, maxFailures: 1 },
    active: { unhealthyThreshold: 1, healthyThreshold: 1 },
  });
  health.recordDialFailure();
  health.recordCheck(false);
  clock.advance(5000);
  assert.equal(health.healthy, false);
  assert.deepEqual(log.changes, [{ healthy: false, cause: 'passive' }]);
  health.recordCheck(true);
  assert.deepEqual(log.changes.at(-1), { healthy: true, cause: 'active' });
});

test('close() cancels the cool-down timer', () => {
  const clock = new FakeClock();
  const { health } = fakeHealth(clock, { passive: { ...passive, maxFailures: 1 } });
  health.recordDialFailure();
  health.close();
  assert.equal(clock.pending.size, 0);
});

test('for any mix of checks, dials and time, changes alternate and the last one matches healthy', () => {
  const step = fc.oneof(
    fc.constantFrom('check_ok', 'check_fail', 'dial_fail', 'dial_ok', 'read'),
    fc.integer({ min: 0, max: 3000 }),
  );
  fc.assert(
    fc.property(
      fc.array(step, { maxLength: 100 }),
      fc.record({
        maxFailures: fc.integer({ min: 1, max: 4 }),
        windowMs: fc.integer({ min: 1, max: 2000 }),
        cooldownMs: fc.integer({ min: 1, max: 4000 }),
      }),
      fc.boolean(),
      (steps, passiveSettings, initial) => {
        const clock = new FakeClock();
        const { health, log } = fakeHealth(clock, {
          passive: passiveSettings,
          active: { unhealthyThreshold: 2, healthyThreshold: 2 },
          initiallyHealthy: initial,
        });
        for (const s of steps) {
          if (typeof s === 'number') clock.advance(s);
          else if (s === 'check_ok' || s === 'check_fail') health.recordCheck(s === 'check_ok');
          else if (s === 'dial_fail') health.recordDialFailure();
          else if (s === 'dial_ok') health.recordDialSuccess();
          const healthy = health.healthy;
          log.changes.forEach((change, i) => {
            const previous = i === 0 ? initial : log.changes[i - 1]!.healthy;
            assert.equal(change.healthy, !previous);
          });
          assert.equal(log.changes.at(-1)?.healthy ?? initial, healthy);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('a cool-down on real timers ends through onChange', async () => {
  const log = new ChangeLog();
  const health = new UpstreamHealth({
    passive: { maxFailures: 1, windowMs: 1000, cooldownMs: 20 },
    onChange: log.onChange,
  });
  health.recordDialFailure();
  assert.equal(await log.next(), true);
  assert.deepEqual(log.changes, [
    { healthy: false, cause: 'passive' },
    { healthy: true, cause: 'cooldown_over' },
  ]);
});
