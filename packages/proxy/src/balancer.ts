import { SwitchyardError } from '@switchyard/telemetry';

/**
 * Load-balancing policies. `order` runs once per proxied connection, so each policy allocates only
 * the array it returns and keeps its state in plain fields. Pools hold up to 1,000 upstreams:
 * round_robin, random and first touch only the `limit` candidates they return; least_connections
 * and client_ip_hash read every candidate once (the fewest connections and the heaviest hash can
 * be anywhere) and never copy or sort the input.
 */
export const BALANCING_POLICIES = [
  'round_robin',
  'least_connections',
  'random',
  'first',
  'client_ip_hash',
] as const;
export type BalancingPolicy = (typeof BALANCING_POLICIES)[number];

/** What a policy needs to know of an upstream. */
export interface Candidate {
  readonly name: string;
  readonly activeConnections: number;
}

export interface Balancer {
  /**
   * The order in which to try upstreams for one new connection: the first is the pick, the rest the
   * failover order when a dial is refused or times out. Only `healthy` candidates (already filtered by
   * the caller, in configured order) appear, each at most once. At most `limit` entries. Empty input →
   * empty output.
   */
  order<C extends Candidate>(healthy: readonly C[], clientIp: string, limit: number): C[];
}

export interface BalancerOptions {
  /** Source of uniform numbers in [0, 1) for the `random` policy. Default: `Math.random`. */
  random?: () => number;
}

/** The configured policy is not one of {@link BALANCING_POLICIES}. */
export class BalancingPolicyError extends SwitchyardError {
  readonly policy: string;

  constructor(policy: unknown) {
    super(
      'SWY_ERR_PROXY_BALANCING_POLICY',
      `unknown load-balancing policy "${String(policy)}"; use one of ${BALANCING_POLICIES.join(', ')}`,
    );
    this.policy = String(policy);
  }
}

/**
 * Creates the balancer for one upstream pool. Policies:
 *
 * - `round_robin`: each call starts one position further along the configured ring; failover continues
 *   around the ring. Over `n * k` calls with a fixed set each of the `n` upstreams is picked `k` times.
 * - `least_connections`: fewest `activeConnections` first. Upstreams with equal counts take turns
 *   (each run of equal counts, in configured order, is rotated by a per-balancer counter), so idle
 *   upstreams share new connections instead of the first one taking them all.
 * - `random`: a uniformly random pick from `options.random`; failover tries the others in random
 *   order, none twice (a partial Fisher-Yates shuffle).
 * - `first`: configured order, for active-passive pools: the first healthy upstream takes everything.
 * - `client_ip_hash`: rendezvous (highest-random-weight) hashing. Each upstream gets the weight
 *   `hash(clientIp, upstream name)` and the heaviest wins, so a client sticks to one upstream while the
 *   set is unchanged, and removing an upstream moves only the clients that were on it (to their
 *   second-heaviest). The hash is FNV-1a over UTF-16 code units with MurmurHash3's 32-bit finaliser:
 *   no seed, so every proxy process agrees on the assignment.
 *
 * @throws {BalancingPolicyError} when `policy` is not one of {@link BALANCING_POLICIES}.
 */
export function createBalancer(policy: BalancingPolicy, options: BalancerOptions = {}): Balancer {
  switch (policy) {
    case 'round_robin':
      return new RoundRobinBalancer();
    case 'least_connections':
      return new LeastConnectionsBalancer();
    case 'random':
      return new RandomBalancer(options.random ?? Math.random);
    case 'first':
      return new FirstBalancer();
    case 'client_ip_hash':
      return new ClientIpHashBalancer();
    default:
      throw new BalancingPolicyError(policy);
  }
}

/** How many entries `order` returns; 0 for a negative or NaN limit. */
function orderLength(available: number, limit: number): number {
  const length = Math.min(available, Math.floor(limit));
  return length > 0 ? length : 0;
}

class RoundRobinBalancer implements Balancer {
  #next = 0;

  order<C extends Candidate>(healthy: readonly C[], _clientIp: string, limit: number): C[] {
    const length = orderLength(healthy.length, limit);
    const order: C[] = [];
    if (length === 0) return order;
    const ring = healthy.length;
    // Kept below `ring` so that a shrinking or growing set never skips a turn.
    const start = this.#next % ring;
    this.#next = start + 1;
    let index = start;
    for (let i = 0; i < length; i++) {
      order.push(healthy[index]!);
      index = index + 1 === ring ? 0 : index + 1;
    }
    return order;
  }
}

/** The rotation counter wraps at lcm(1..16), so turns among up to 16 tied upstreams stay exact. */
const TIE_ROTATION_PERIOD = 720_720;

/**
 * The order is what a stable sort by `activeConnections` would give, each run of equal counts
 * rotated left by the call counter, cut to `limit`; but only the `limit` entries returned are ever
 * placed. A first pass finds the highest count among them (`cutoff`); a second collects, in
 * configured order, the candidates below it (fewer than `limit`) and the positions of those at it
 * (the run the cut falls in, whose full length sets its rotation). At 1,000 upstreams that
 * measured 5 µs a call; sorting a copy of the pool, 70 µs.
 */
class LeastConnectionsBalancer implements Balancer {
  #rotation = 0;
  /** The `limit` lowest counts seen so far in the first pass, ascending; reused across calls. */
  #lowest = new Float64Array(16);
  /** Positions in the input of the candidates whose count is the cutoff; reused across calls. */
  #cutoffRun = new Int32Array(64);

  order<C extends Candidate>(healthy: readonly C[], _clientIp: string, limit: number): C[] {
    const length = orderLength(healthy.length, limit);
    if (length === 0) return [];
    const rotation = this.#rotation;
    this.#rotation = (rotation + 1) % TIE_ROTATION_PERIOD;
    const cutoff = this.#cutoff(healthy, length);
    if (this.#cutoffRun.length < healthy.length) this.#cutoffRun = new Int32Array(healthy.length);
    const cutoffRun = this.#cutoffRun;
    const order: C[] = [];
    let runLength = 0;
    for (let i = 0; i < healthy.length; i++) {
      const connections = healthy[i]!.activeConnections;
      if (connections < cutoff) order.push(healthy[i]!);
      else if (connections === cutoff) cutoffRun[runLength++] = i;
    }
    sortByActiveConnections(order);
    for (let runStart = 0; runStart < order.length; ) {
      const connections = order[runStart]!.activeConnections;
      let runEnd = runStart + 1;
      while (runEnd < order.length && order[runEnd]!.activeConnections === connections) runEnd++;
      const run = runEnd - runStart;
      if (run > 1) rotateLeft(order, runStart, runEnd, rotation % run);
      runStart = runEnd;
    }
    let position = rotation % runLength;
    while (order.length < length) {
      order.push(healthy[cutoffRun[position]!]!);
      position = position + 1 === runLength ? 0 : position + 1;
    }
    return order;
  }

  /** The `length`-th lowest `activeConnections` of `healthy` (1 <= length <= healthy.length). */
  #cutoff(healthy: readonly Candidate[], length: number): number {
    if (this.#lowest.length < length) this.#lowest = new Float64Array(length);
    const lowest = this.#lowest;
    let kept = 0;
    for (let i = 0; i < healthy.length; i++) {
      const connections = healthy[i]!.activeConnections;
      if (kept === length && connections >= lowest[length - 1]!) continue;
      let position = kept < length ? kept++ : length - 1;
      while (position > 0 && lowest[position - 1]! > connections) {
        lowest[position] = lowest[position - 1]!;
        position--;
      }
      lowest[position] = connections;
    }
    return lowest[length - 1]!;
  }
}

/** A stable insertion sort by `activeConnections` in place (fewer than `limit` entries). */
function sortByActiveConnections(order: Candidate[]): void {
  for (let i = 1; i < order.length; i++) {
    const candidate = order[i]!;
    let position = i;
    while (position > 0 && order[position - 1]!.activeConnections > candidate.activeConnections) {
      order[position] = order[position - 1]!;
      position--;
    }
    order[position] = candidate;
  }
}

/** Rotates `items[start..end)` left by `by` places in place (three reversals, no allocation). */
function rotateLeft(items: unknown[], start: number, end: number, by: number): void {
  if (by === 0) return;
  reverse(items, start, start + by);
  reverse(items, start + by, end);
  reverse(items, start, end);
}

function reverse(items: unknown[], start: number, end: number): void {
  for (let low = start, high = end - 1; low < high; low++, high--) {
    const item = items[low];
    items[low] = items[high];
    items[high] = item;
  }
}

/**
 * A partial Fisher-Yates shuffle that leaves the input alone: instead of a copy of the pool, it
 * remembers only the positions its swaps displaced (at most one per entry returned).
 */
class RandomBalancer implements Balancer {
  readonly #random: () => number;
  /** Positions whose entry a swap replaced, and the entries now there; reused across calls. */
  #displacedAt = new Int32Array(16);
  #displaced: unknown[] = [];

  constructor(random: () => number) {
    this.#random = random;
  }

  order<C extends Candidate>(healthy: readonly C[], _clientIp: string, limit: number): C[] {
    const length = orderLength(healthy.length, limit);
    const order: C[] = [];
    if (length === 0) return order;
    if (this.#displacedAt.length < length) this.#displacedAt = new Int32Array(length);
    const displacedAt = this.#displacedAt;
    const displaced = this.#displaced as C[];
    let displacedCount = 0;
    const last = healthy.length - 1;
    for (let i = 0; i < length; i++) {
      let pick = i + Math.floor(this.#random() * (healthy.length - i));
      // A generator outside [0, 1) must not pick an already placed candidate twice.
      if (!(pick >= i && pick <= last)) pick = i;
      const pickSlot = slotOf(displacedAt, displacedCount, pick);
      order.push(pickSlot < displacedCount ? displaced[pickSlot]! : healthy[pick]!);
      if (pick === i) continue;
      // Position i is never read again; pick now holds what was at i.
      const iSlot = slotOf(displacedAt, displacedCount, i);
      displaced[pickSlot] = iSlot < displacedCount ? displaced[iSlot]! : healthy[i]!;
      displacedAt[pickSlot] = pick;
      if (pickSlot === displacedCount) displacedCount++;
    }
    displaced.fill(undefined as unknown as C, 0, displacedCount);
    return order;
  }
}

/** Where `position` is among the first `count` displaced positions, or `count` when it is not. */
function slotOf(displacedAt: Int32Array, count: number, position: number): number {
  let slot = 0;
  while (slot < count && displacedAt[slot] !== position) slot++;
  return slot;
}

class FirstBalancer implements Balancer {
  order<C extends Candidate>(healthy: readonly C[], _clientIp: string, limit: number): C[] {
    return healthy.slice(0, orderLength(healthy.length, limit));
  }
}

class ClientIpHashBalancer implements Balancer {
  /** Weights of the entries placed so far in the current `order` call, reused across calls. */
  #weights = new Uint32Array(16);

  order<C extends Candidate>(healthy: readonly C[], clientIp: string, limit: number): C[] {
    const length = orderLength(healthy.length, limit);
    const order: C[] = [];
    if (length === 0) return order;
    if (this.#weights.length < length) this.#weights = new Uint32Array(length);
    const weights = this.#weights;
    // Finalising the client hash first keeps ("1.2.3.4", "5a") and ("1.2.3.45", "a") apart.
    const clientHash = fmix32(fnv1a(clientIp, ipv4MappedPrefixLength(clientIp), FNV_OFFSET_BASIS));
    for (const candidate of healthy) {
      const weight = fmix32(fnv1a(candidate.name, 0, clientHash));
      // Strictly heavier entries move ahead: equal weights keep the configured order.
      let position = order.length;
      while (position > 0 && weights[position - 1]! < weight) position--;
      if (position === length) continue;
      for (let i = order.length === length ? length - 1 : order.length; i > position; i--) {
        order[i] = order[i - 1]!;
        weights[i] = weights[i - 1]!;
      }
      order[position] = candidate;
      weights[position] = weight;
    }
    return order;
  }
}

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Node reports an IPv4 client of a dual-stack listener as `::ffff:192.0.2.1` and of an IPv4 listener as
 * `192.0.2.1`; hashing both the same keeps the client on one upstream whichever listener it reached.
 */
function ipv4MappedPrefixLength(ip: string): number {
  return ip.startsWith('::ffff:') && ip.includes('.', 7) ? 7 : 0;
}

/** 32-bit FNV-1a over the UTF-16 code units of `text` from index `start`, continuing from `hash`. */
function fnv1a(text: string, start: number, hash: number): number {
  let state = hash;
  for (let i = start; i < text.length; i++) state = Math.imul(state ^ text.charCodeAt(i), FNV_PRIME);
  return state >>> 0;
}

/** MurmurHash3's finaliser: FNV-1a alone mixes its last input poorly into the high bits. */
function fmix32(hash: number): number {
  let state = hash;
  state = Math.imul(state ^ (state >>> 16), 0x85ebca6b);
  state = Math.imul(state ^ (state >>> 13), 0xc2b2ae35);
  return (state ^ (state >>> 16)) >>> 0;
}
