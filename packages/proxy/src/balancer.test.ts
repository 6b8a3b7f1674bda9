import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  BALANCING_POLICIES,
  type BalancingPolicy,
  BalancingPolicyError,
  type Candidate,
  createBalancer,
} from './balancer.ts';

function upstreams(...names: string[]): Candidate[] {
  return names.map((name) => ({ name, activeConnections: 0 }));
}

function loaded(connections: Record<string, number>): Candidate[] {
  return Object.entries(connections).map(([name, activeConnections]) => ({ name, activeConnections }));
}

function names(order: readonly Candidate[]): string[] {
  return order.map((candidate) => candidate.name);
}

/** Counts how often each upstream is picked first over `calls` calls. */
function pickCounts(pick: () => Candidate | undefined, calls: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let call = 0; call < calls; call++) {
    const name = pick()?.name ?? '(none)';
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** mulberry32: a small seeded generator, so that random-policy tests are reproducible. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomIps(count: number, seed: number): string[] {
  return fc.sample(fc.oneof(fc.ipV4(), fc.ipV6()), { numRuns: count, seed });
}

const pool = upstreams('a', 'b', 'c', 'd');

test('every policy returns an empty order for an empty pool', () => {
  for (const policy of BALANCING_POLICIES) {
    assert.deepEqual(createBalancer(policy).order([], '192.0.2.1', 3), [], policy);
  }
});

test('every policy returns an empty order for a limit of zero, a negative limit or NaN', () => {
  for (const policy of BALANCING_POLICIES) {
    for (const limit of [0, -1, Number.NaN]) {
      assert.deepEqual(createBalancer(policy).order(pool, '192.0.2.1', limit), [], `${policy} ${limit}`);
    }
  }
});

test('an unknown policy is rejected with a code and the allowed values', () => {
  assert.throws(
    () => createBalancer('weighted' as BalancingPolicy),
    (error: unknown) => {
      assert.ok(error instanceof BalancingPolicyError);
      assert.equal(error.code, 'SWY_ERR_PROXY_BALANCING_POLICY');
      assert.equal(error.policy, 'weighted');
      assert.match(
        error.message,
        /"weighted".*round_robin, least_connections, random, first, client_ip_hash/,
      );
      return true;
    },
  );
});

test('round robin starts one upstream further on each call and fails over around the ring', () => {
  const balancer = createBalancer('round_robin');
  assert.deepEqual(names(balancer.order(pool, '', 4)), ['a', 'b', 'c', 'd']);
  assert.deepEqual(names(balancer.order(pool, '', 4)), ['b', 'c', 'd', 'a']);
  assert.deepEqual(names(balancer.order(pool, '', 2)), ['c', 'd']);
  assert.deepEqual(names(balancer.order(pool, '', 3)), ['d', 'a', 'b']);
  assert.deepEqual(names(balancer.order(pool, '', 1)), ['a']);
});

test('round robin spreads n times k calls exactly k per upstream', () => {
  const balancer = createBalancer('round_robin');
  const counts = pickCounts(() => balancer.order(pool, '', 1)[0], pool.length * 250);
  assert.deepEqual(Object.fromEntries(counts), { a: 250, b: 250, c: 250, d: 250 });
});

test('round robin keeps rotating when the healthy set shrinks', () => {
  const balancer = createBalancer('round_robin');
  balancer.order(pool, '', 1);
  balancer.order(pool, '', 1);
  balancer.order(pool, '', 1);
  const shrunk = upstreams('a', 'b');
  const counts = pickCounts(() => balancer.order(shrunk, '', 1)[0], 100);
  assert.deepEqual(Object.fromEntries(counts), { a: 50, b: 50 });
});

test('least connections picks the upstream with the fewest active connections', () => {
  const balancer = createBalancer('least_connections');
  const candidates = loaded({ a: 7, b: 3, c: 9, d: 5 });
  assert.deepEqual(names(balancer.order(candidates, '', 4)), ['b', 'd', 'a', 'c']);
  assert.deepEqual(names(balancer.order(candidates, '', 2)), ['b', 'd']);
});

test('least connections spreads ties among the least loaded upstreams evenly', () => {
  const balancer = createBalancer('least_connections');
  const candidates = loaded({ a: 2, b: 0, c: 0, d: 0 });
  const counts = pickCounts(() => balancer.order(candidates, '', 1)[0], 300);
  assert.deepEqual(Object.fromEntries(counts), { b: 100, c: 100, d: 100 });
});

test('least connections keeps the loaded upstream last in the failover order while it rotates ties', () => {
  const balancer = createBalancer('least_connections');
  const candidates = loaded({ a: 0, b: 4, c: 0 });
  assert.deepEqual(names(balancer.order(candidates, '', 3)), ['a', 'c', 'b']);
  assert.deepEqual(names(balancer.order(candidates, '', 3)), ['c', 'a', 'b']);
  assert.deepEqual(names(balancer.order(candidates, '', 3)), ['a', 'c', 'b']);
});

test('least connections spreads ties evenly in a pool larger than the insertion-sort limit', () => {
  const balancer = createBalancer('least_connections');
  const candidates = Array.from({ length: 30 }, (_, index) => ({
    name: `u${index}`,
    activeConnections: index % 3,
  }));
  const counts = pickCounts(() => balancer.order(candidates, '', 1)[0], 100);
  assert.deepEqual([...counts.values()], new Array(10).fill(10));
  assert.ok([...counts.keys()].every((name) => Number(name.slice(1)) % 3 === 0));
});

test('least connections does not reorder the caller’s array', () => {
  const candidates = loaded({ a: 3, b: 1, c: 2 });
  createBalancer('least_connections').order(candidates, '', 3);
  assert.deepEqual(names(candidates), ['a', 'b', 'c']);
});

test('random picks with the given generator and covers every upstream', () => {
  const balancer = createBalancer('random', { random: seededRandom(42) });
  const counts = pickCounts(() => balancer.order(pool, '', 1)[0], 4000);
  assert.deepEqual([...counts.keys()].sort(), ['a', 'b', 'c', 'd']);
  for (const [name, count] of counts) assert.ok(count > 850 && count < 1150, `${name} picked ${count} times`);
});

test('random picks the upstream the generator points at', () => {
  assert.deepEqual(names(createBalancer('random', { random: () => 0 }).order(pool, '', 1)), ['a']);
  assert.deepEqual(names(createBalancer('random', { random: () => 0.99 }).order(pool, '', 1)), ['d']);
  assert.deepEqual(names(createBalancer('random', { random: () => 0.5 }).order(pool, '', 1)), ['c']);
});

test('random fails over through every other upstream, each once', () => {
  const balancer = createBalancer('random', { random: seededRandom(7) });
  for (let call = 0; call < 200; call++) {
    assert.deepEqual(names(balancer.order(pool, '', 4)).sort(), ['a', 'b', 'c', 'd']);
  }
});

test('random never repeats an upstream even when the generator leaves [0, 1)', () => {
  for (const value of [1, 1.5, -0.25, Number.NaN]) {
    const order = createBalancer('random', { random: () => value }).order(pool, '', 4);
    assert.deepEqual(names(order).sort(), ['a', 'b', 'c', 'd'], String(value));
  }
});

test('first keeps the configured order', () => {
  const balancer = createBalancer('first');
  assert.deepEqual(names(balancer.order(pool, '192.0.2.1', 4)), ['a', 'b', 'c', 'd']);
  assert.deepEqual(names(balancer.order(pool, '192.0.2.1', 2)), ['a', 'b']);
  assert.deepEqual(names(balancer.order(upstreams('c', 'd'), '192.0.2.1', 4)), ['c', 'd']);
});

test('client ip hash keeps the assignment of earlier releases, so upgrades do not move clients', () => {
  const balancer = createBalancer('client_ip_hash');
  const assignment = ['192.0.2.1', '198.51.100.7', '2001:db8::1', '::ffff:203.0.113.9'].map((ip) =>
    names(balancer.order(pool, ip, 4)).join(''),
  );
  // Computed independently (FNV-1a, then MurmurHash3 fmix32) when the hash was chosen.
  assert.deepEqual(assignment, ['cdab', 'acdb', 'bdca', 'dbac']);
});

test('client ip hash sends an IPv4 client to the same upstream whether or not it is IPv4-mapped', () => {
  const balancer = createBalancer('client_ip_hash');
  for (const ip of randomIps(500, 3).filter((ip) => ip.includes('.') && !ip.includes(':'))) {
    assert.deepEqual(balancer.order(pool, `::ffff:${ip}`, 4), balancer.order(pool, ip, 4), ip);
  }
});

test('client ip hash returns the same order for the same ip and set, from any balancer', () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.uniqueArray(fc.string(), { minLength: 1 }), (ip, set) => {
      const candidates = upstreams(...set);
      const first = createBalancer('client_ip_hash').order(candidates, ip, set.length);
      const balancer = createBalancer('client_ip_hash');
      balancer.order(candidates, '192.0.2.1', 1);
      assert.deepEqual(balancer.order(candidates, ip, set.length), first);
      assert.deepEqual(balancer.order(candidates.slice().reverse(), ip, set.length), first);
    }),
  );
});

test('client ip hash moves only the clients of a removed upstream, to their second choice', () => {
  const balancer = createBalancer('client_ip_hash');
  const all = upstreams('alpha', 'bravo', 'charlie', 'delta', 'echo');
  for (const removed of all) {
    const remaining = all.filter((candidate) => candidate !== removed);
    let moved = 0;
    for (const ip of randomIps(2000, 1)) {
      const before = balancer.order(all, ip, 2);
      const after = balancer.order(remaining, ip, 1);
      if (before[0] === removed) {
        assert.equal(after[0], before[1], ip);
        moved++;
      } else {
        assert.equal(after[0], before[0], ip);
      }
    }
    assert.ok(moved > 0, `no client was on ${removed.name}`);
  }
});

test('client ip hash spreads 10,000 random ips within 15% of the mean over 4 upstreams', () => {
  const balancer = createBalancer('client_ip_hash');
  const ips = randomIps(10_000, 2);
  let index = 0;
  const counts = pickCounts(() => balancer.order(pool, ips[index++]!, 1)[0], ips.length);
  assert.equal(counts.size, 4);
  for (const [name, count] of counts)
    assert.ok(Math.abs(count - 2500) <= 375, `${name} got ${count} of 10000`);
});

test('client ip hash spreads 10,000 consecutive addresses of one network within 15% of the mean', () => {
  const balancer = createBalancer('client_ip_hash');
  let host = 0;
  const counts = pickCounts(() => {
    const ip = `10.0.${host >> 8}.${host & 255}`;
    host++;
    return balancer.order(pool, ip, 1)[0];
  }, 10_000);
  assert.equal(counts.size, 4);
  for (const [name, count] of counts)
    assert.ok(Math.abs(count - 2500) <= 375, `${name} got ${count} of 10000`);
});

test('every policy returns a prefix of a permutation of its input, at most limit long', () => {
  const candidate = fc.record({ name: fc.string({ maxLength: 8 }), activeConnections: fc.nat(4) });
  fc.assert(
    fc.property(
      fc.constantFrom(...BALANCING_POLICIES),
      fc.array(candidate, { maxLength: 24 }),
      fc.oneof(fc.ipV4(), fc.ipV6(), fc.string()),
      fc.integer({ min: 0, max: 15 }),
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1 }),
      fc.nat(5),
      (policy, healthy, ip, limit, randoms, warmUpCalls) => {
        let next = 0;
        const random = () => randoms[next++ % randoms.length]!;
        const balancer = createBalancer(policy, { random });
        for (let call = 0; call < warmUpCalls; call++) balancer.order(healthy, ip, limit);
        const order = balancer.order(healthy, ip, limit);
        assert.equal(order.length, Math.min(limit, healthy.length));
        assert.equal(new Set(order).size, order.length, 'an upstream appears twice');
        for (const entry of order) assert.ok(healthy.includes(entry), 'an upstream not in the input');
      },
    ),
    { numRuns: 2000 },
  );
});

test('least connections orders by active connections for any loads, in small and large pools', () => {
  const candidate = fc.record({ name: fc.string({ maxLength: 4 }), activeConnections: fc.nat(6) });
  fc.assert(
    fc.property(fc.array(candidate, { maxLength: 40 }), fc.nat(20), (healthy, warmUpCalls) => {
      const balancer = createBalancer('least_connections');
      for (let call = 0; call < warmUpCalls; call++) balancer.order(healthy, '', healthy.length);
      const order = balancer.order(healthy, '', healthy.length);
      const loads = order.map((entry) => entry.activeConnections);
      assert.deepEqual(
        loads,
        healthy.map((entry) => entry.activeConnections).sort((a, b) => a - b),
      );
    }),
  );
});

/** least_connections as first written: a stable sort of a copy, each run of ties rotated, cut to limit. */
function sortAndRotate(healthy: readonly Candidate[], limit: number, rotation: number): Candidate[] {
  const order = healthy.slice().sort((a, b) => a.activeConnections - b.activeConnections);
  for (let start = 0; start < limit && start < order.length; ) {
    let end = start + 1;
    while (end < order.length && order[end]!.activeConnections === order[start]!.activeConnections) end++;
    const run = order.slice(start, end);
    const by = rotation % run.length;
    order.splice(start, run.length, ...run.slice(by), ...run.slice(0, by));
    start = end;
  }
  return order.slice(0, limit);
}

/** random as first written: a partial Fisher-Yates shuffle of a copy. */
function shuffleCopy(healthy: readonly Candidate[], limit: number, random: () => number): Candidate[] {
  const order = healthy.slice();
  const length = Math.min(limit, order.length);
  for (let i = 0; i < length; i++) {
    let pick = i + Math.floor(random() * (order.length - i));
    if (!(pick >= i && pick <= order.length - 1)) pick = i;
    [order[i], order[pick]] = [order[pick]!, order[i]!];
  }
  return order.slice(0, length);
}

test('least connections picks exactly what sorting the pool and rotating its ties would, without sorting it', () => {
  const candidate = fc.record({ name: fc.string({ maxLength: 4 }), activeConnections: fc.nat(5) });
  fc.assert(
    fc.property(
      fc.oneof(fc.array(candidate, { maxLength: 20 }), fc.array(candidate, { maxLength: 1200 })),
      fc.integer({ min: 1, max: 16 }),
      fc.nat(40),
      (healthy, limit, warmUpCalls) => {
        const balancer = createBalancer('least_connections');
        for (let call = 0; call < warmUpCalls; call++) balancer.order(healthy, '', limit);
        for (let call = warmUpCalls; call < warmUpCalls + 3; call++) {
          assert.deepEqual(balancer.order(healthy, '', limit), sortAndRotate(healthy, limit, call));
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('random picks exactly what shuffling a copy of the pool would, without copying it', () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 1200 })),
      fc.integer({ min: 1, max: 16 }),
      // Uniform in [0, 1) (fc.double favours the extremes), and now and then 1, outside the range.
      fc.array(
        fc.oneof(
          fc.nat(2 ** 20 - 1).map((n) => n / 2 ** 20),
          fc.constant(1),
        ),
        { minLength: 1 },
      ),
      (size, limit, randoms) => {
        const healthy = upstreams(...Array.from({ length: size }, (_, i) => `u${i}`));
        let next = 0;
        const balancer = createBalancer('random', { random: () => randoms[next++ % randoms.length]! });
        for (let call = 0; call < 3; call++) {
          const start = next;
          const order = balancer.order(healthy, '', limit);
          next = start;
          assert.deepEqual(
            order,
            shuffleCopy(healthy, limit, () => randoms[next++ % randoms.length]!),
          );
        }
      },
    ),
    { numRuns: 300 },
  );
});
