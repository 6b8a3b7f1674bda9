import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBench } from './child-process.ts';
import { positiveIntegerFromEnv } from './harness.ts';
import { DERPLOAD, type LoadOptions, measureLoad } from './relay-load.ts';
import {
  type CaseSamples,
  DERPER,
  DERPER_MESH,
  OURS,
  OURS_MESH,
  OURS_OFF,
  renderReport,
} from './relay-report.ts';
import {
  derperMissing,
  GO_TOOLS_DIR,
  loopbackCertificate,
  type RelaySetup,
  startDerperSingle,
  startMesh,
  startOursSingle,
} from './relay-servers.ts';

/**
 * Relay benchmark: packets per second and delivery latency of 1 KiB packets through our relay
 * (packages/relay, metrics on and off) and through Tailscale's derper, with 2, 100 and 1,000
 * clients, and across two meshed relays of each, all driven by one load generator
 * (test/tools/derpload: Tailscale's own derphttp clients). Relay CPU seconds per million packets
 * come from /proc. Every server starts once; rounds are interleaved (every case once per round, the
 * starting case rotated) and the tables show medians over rounds.
 *
 * Run: `node relay.bench.ts` from bench/ (it first runs scripts/build-go-tools.sh, which builds
 * derper and derpload when missing). Knobs: BENCH_QUICK=1 (one short round), BENCH_RELAY_ROUNDS
 * (default 3), BENCH_RELAY_DURATION_MS (measured window, default 3000), BENCH_RELAY_WARMUP_MS
 * (default 1000), BENCH_RELAY_CLIENTS (default 2,100,1000), BENCH_RELAY_MESH_CLIENTS (default
 * 2,100; empty skips the mesh), BENCH_RELAY_PROFILE_DIR=<dir> (our metrics-on relay runs with
 * `--cpu-prof` and writes its profile there when the bench stops it).
 */

const PACKET_BYTES = 1024;
const SCRAPE_EVERY_MS = 1_000;
const REPO_ROOT = path.resolve(import.meta.dirname, '..');

interface Settings {
  readonly rounds: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly clients: readonly number[];
  readonly meshClients: readonly number[];
  readonly profileDir: string | undefined;
  readonly quick: boolean;
}

/** One case: a contender at one client count, measured once per round. */
interface Case {
  readonly setup: RelaySetup;
  readonly entry: CaseSamples;
}

function clientCountsFromEnv(name: string, fallback: readonly number[]): readonly number[] {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  const counts = raw
    .split(',')
    .filter((item) => item.trim() !== '')
    .map(Number);
  if (counts.some((count) => !Number.isInteger(count) || count < 2 || count % 2 !== 0)) {
    throw new RangeError(
      `${name}="${raw}" is not allowed: give even client counts >= 2, e.g. ${name}=2,100,1000`,
    );
  }
  return counts;
}

function readSettings(): Settings {
  const quick = process.env.BENCH_QUICK === '1';
  const profileDir = process.env.BENCH_RELAY_PROFILE_DIR || undefined;
  return {
    rounds: positiveIntegerFromEnv('BENCH_RELAY_ROUNDS', quick ? 1 : 3),
    durationMs: positiveIntegerFromEnv('BENCH_RELAY_DURATION_MS', quick ? 1_000 : 3_000),
    warmupMs: positiveIntegerFromEnv('BENCH_RELAY_WARMUP_MS', quick ? 500 : 1_000),
    clients: clientCountsFromEnv('BENCH_RELAY_CLIENTS', [2, 100, 1000]),
    meshClients: clientCountsFromEnv('BENCH_RELAY_MESH_CLIENTS', [2, 100]),
    profileDir: profileDir === undefined ? undefined : path.resolve(profileDir),
    quick,
  };
}

/** Builds derper and derpload when they are missing or older than their module (needs Go). */
function buildGoTools(): void {
  const build = spawnSync('bash', [path.join(REPO_ROOT, 'scripts/build-go-tools.sh')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (build.status !== 0) {
    throw new Error(
      `scripts/build-go-tools.sh failed (${build.status ?? build.signal}); the relay bench needs ${GO_TOOLS_DIR}/derper and derpload`,
    );
  }
  const missing = derperMissing();
  if (missing !== undefined) throw new Error(missing);
}

/** What to stop or remove on the way out, including after Ctrl-C: servers, the work dir. */
const teardown: { stop(): Promise<void> }[] = [];

async function stopAll(): Promise<void> {
  await Promise.all(teardown.splice(0).map((item) => item.stop()));
}

async function started(setup: Promise<RelaySetup>): Promise<RelaySetup> {
  const running = await setup;
  teardown.push(...running.servers);
  return running;
}

async function startSetups(settings: Settings, workDir: string): Promise<Case[]> {
  const cases: Case[] = [];
  const add = (setup: RelaySetup, clientCounts: readonly number[]): void => {
    for (const clients of clientCounts)
      cases.push({ setup, entry: { contender: setup.name, clients, samples: [] } });
  };
  if (settings.meshClients.length > 0) {
    const certificate = loopbackCertificate(workDir);
    const meshKeyFile = path.join(workDir, 'mesh.key');
    writeFileSync(meshKeyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    // derper creates the certificate that our meshed relays then serve too.
    const derperMesh = await started(startMesh('derper', DERPER_MESH, workDir, certificate, meshKeyFile));
    const oursMesh = await started(startMesh('ours', OURS_MESH, workDir, certificate, meshKeyFile));
    add(oursMesh, settings.meshClients);
    add(derperMesh, settings.meshClients);
  }
  const profile =
    settings.profileDir === undefined ? undefined : ['--cpu-prof', `--cpu-prof-dir=${settings.profileDir}`];
  add(await started(startOursSingle(OURS, workDir, true, profile)), settings.clients);
  add(await started(startOursSingle(OURS_OFF, workDir, false)), settings.clients);
  add(await started(startDerperSingle(DERPER, workDir)), settings.clients);
  return cases;
}

async function runRounds(settings: Settings, cases: readonly Case[]): Promise<void> {
  for (let round = 0; round < settings.rounds; round++) {
    for (let offset = 0; offset < cases.length; offset++) {
      const { setup, entry } = cases[(round + offset) % cases.length] as Case;
      const options: LoadOptions = {
        clients: entry.clients,
        sizeBytes: PACKET_BYTES,
        durationMs: settings.durationMs,
        warmupMs: settings.warmupMs,
        scrapeEveryMs: SCRAPE_EVERY_MS,
      };
      entry.samples.push(await measureLoad(setup, options));
    }
    process.stderr.write(`relay bench: round ${round + 1}/${settings.rounds} done\n`);
  }
}

/** derper's version as test/tools/derper/go.mod pins it (the binary, built with -trimpath, cannot tell). */
function derperVersion(): string {
  const goMod = readFileSync(path.join(REPO_ROOT, 'test/tools/derper/go.mod'), 'utf8');
  return `derper ${/tailscale\.com (v\S+)/.exec(goMod)?.[1] ?? '(version unknown)'}`;
}

async function main(): Promise<void> {
  const settings = readSettings();
  const loadAverage = os.loadavg()[0] as number;
  buildGoTools();
  process.stderr.write(`relay bench: load generator ${DERPLOAD}\n`);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'swy-relay-bench-'));
  teardown.push({ stop: async () => rmSync(workDir, { recursive: true, force: true }) });
  const cases = await startSetups(settings, workDir);
  const startedAt = performance.now();
  try {
    await runRounds(settings, cases);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const logs = [...new Set(cases.flatMap((c) => c.setup.servers))]
      .map((server) => `  ${server.name} output:\n${server.outputTail()}`)
      .join('\n');
    throw new Error(`${reason}\n${logs}`);
  }
  // Stop the servers (a profiled relay writes its profile on exit) before the work dir goes.
  await Promise.all(teardown.slice(1).map((item) => item.stop()));
  await stopAll();
  process.stdout.write(
    renderReport(
      cases.map((c) => c.entry),
      {
        rounds: settings.rounds,
        durationMs: settings.durationMs,
        warmupMs: settings.warmupMs,
        scrapeEveryMs: SCRAPE_EVERY_MS,
        sizeBytes: PACKET_BYTES,
        loadAverage,
        derperVersion: derperVersion(),
        quick: settings.quick,
      },
    ),
  );
  process.stderr.write(`relay bench: measured in ${((performance.now() - startedAt) / 1000).toFixed(0)} s\n`);
}

runBench('relay bench', main, stopAll);
