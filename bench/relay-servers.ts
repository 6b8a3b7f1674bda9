import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { cpuSecondsOf, stopChild } from './child-process.ts';
import { freePort } from './proxies.ts';

/**
 * The DERP servers of the relay benchmark, each a process of its own on 127.0.0.1:
 *
 * - ours: `node packages/relay/src/main.ts --config <file>` with plain HTTP, metrics on (admin
 *   server on a free port, no OTEL_* or SWITCHYARD_* variable of the caller) or off
 *   (OTEL_SDK_DISABLED=true);
 * - derper: Tailscale's `derper` from .cache/go-tools, plain HTTP on `-a 127.0.0.1:<port>` (any
 *   port but 443 without `-certmode manual` serves HTTP), `-http-port -1`, `-stun=false`;
 * - a meshed pair of either. derper dials its mesh peers as `https://<host>/derp`, so a derper mesh
 *   needs TLS: `-certmode manual -hostname 127.0.0.1` makes derper create a self-signed certificate
 *   for 127.0.0.1 in its cert dir, which every process then trusts (SSL_CERT_FILE for Go,
 *   NODE_EXTRA_CA_CERTS for Node). Our meshed pair serves the same certificate, so both meshes
 *   carry the same TLS cost.
 */

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const OUTPUT_TAIL_LINES = 40;
const PORT_POLL_MS = 50;

const REPO_ROOT = path.resolve(import.meta.dirname, '..');
const RELAY_MAIN = path.join(REPO_ROOT, 'packages/relay/src/main.ts');
export const GO_TOOLS_DIR = path.join(REPO_ROOT, '.cache/go-tools');
const DERPER = path.join(GO_TOOLS_DIR, 'derper');

/** One server process: its CPU time, its log, and (ours with metrics on) its /metrics URL. */
export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  /** Undefined for derper and for ours with metrics off. */
  readonly metricsUrl: string | undefined;
  cpuSeconds(): number;
  /** Resolves with the first output line, past or future, that matches. */
  waitForLine(pattern: RegExp): Promise<string>;
  outputTail(): string;
  stop(): Promise<void>;
}

/** A started contender: one relay, or two meshed relays with clients split between them. */
export interface RelaySetup {
  readonly name: string;
  /** Where derpload's even clients connect. */
  readonly url: string;
  /** Where its odd clients connect: another relay of the mesh, or `url`. */
  readonly recvUrl: string;
  readonly servers: readonly ServerProcess[];
  /** Environment the load generator needs, e.g. SSL_CERT_FILE for the mesh's certificate. */
  readonly loadEnv: Readonly<Record<string, string>>;
}

/** A certificate for 127.0.0.1 that derper created, shared by every TLS server of the bench. */
export interface LoopbackCertificate {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export function loopbackCertificate(workDir: string): LoopbackCertificate {
  const dir = path.join(workDir, 'certs');
  return { dir, certFile: path.join(dir, `${HOST}.crt`), keyFile: path.join(dir, `${HOST}.key`) };
}

/** The environment of a server process: the caller's, without OTEL_* and SWITCHYARD_* settings. */
function serverEnv(extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('OTEL_') && !key.startsWith('SWITCHYARD_')) env[key] = value;
  }
  return { ...env, ...extra };
}

function spawnServer(
  name: string,
  command: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  metricsUrlFrom?: (line: string) => string | undefined,
): { server: ServerProcess; started: Promise<void> } {
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: serverEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const waiters: { pattern: RegExp; resolve(line: string): void }[] = [];
  let exited: string | undefined;
  let metricsUrl: string | undefined;
  const onLine = (line: string): void => {
    tail.push(line);
    if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
    metricsUrl ??= metricsUrlFrom?.(line);
    for (const waiter of waiters.filter((w) => w.pattern.test(line))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  const outputTail = (): string => tail.map((line) => `    ${line}`).join('\n');
  const failure = (reason: string): Error =>
    new Error(`${name} (${[command, ...args].join(' ')}) ${reason}\n${outputTail()}`);
  const started = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (error) => reject(failure(`could not start: ${error.message}`)));
  });
  child.once('exit', (code, signal) => {
    exited = `exited (${code ?? signal})`;
  });
  const server: ServerProcess = {
    name,
    pid: child.pid as number,
    get metricsUrl() {
      return metricsUrl;
    },
    cpuSeconds: () => cpuSecondsOf(name, child.pid as number),
    waitForLine: (pattern) => {
      const seen = tail.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(failure(`logged no line matching ${pattern} within ${READY_TIMEOUT_MS} ms`)),
          READY_TIMEOUT_MS,
        );
        const onExit = (): void => {
          clearTimeout(timer);
          reject(failure(exited ?? 'exited'));
        };
        child.once('exit', onExit);
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            child.off('exit', onExit);
            resolve(line);
          },
        });
      });
    },
    outputTail,
    stop: () => stopChild(child, STOP_TIMEOUT_MS),
  };
  return { server, started };
}

/** A mesh member's TLS certificate, mesh key and peers (ports on 127.0.0.1). */
interface MeshLaunch {
  readonly certificate: LoopbackCertificate;
  readonly meshKeyFile: string;
  readonly peerPorts: readonly number[];
}

/** Options of one of our relays. */
interface OursLaunch {
  readonly name: string;
  readonly workDir: string;
  readonly metrics: boolean;
  readonly port: number;
  /** Serve TLS and mesh with these peers. */
  readonly mesh?: MeshLaunch;
  /** Node flags before main.ts, e.g. `--cpu-prof`. */
  readonly nodeFlags?: readonly string[];
}

function metricsUrlOf(line: string): string | undefined {
  if (!line.includes('"relay serving"')) return undefined;
  return /"metrics":"([^"]+)"/.exec(line)?.[1];
}

async function startOurs(launch: OursLaunch): Promise<ServerProcess> {
  const { mesh } = launch;
  const config = {
    listen: `${HOST}:${launch.port}`,
    keyFile: path.join(launch.workDir, `${launch.name}-key.json`),
    telemetry: { admin: { port: 0 } },
    ...(mesh !== undefined && {
      tls: { certFile: mesh.certificate.certFile, keyFile: mesh.certificate.keyFile },
      mesh: {
        keyFile: mesh.meshKeyFile,
        peers: mesh.peerPorts.map((port, index) => ({
          name: `peer${index}`,
          url: `https://${HOST}:${port}/derp`,
        })),
      },
    }),
  };
  const configFile = path.join(launch.workDir, `${launch.name}.json`);
  writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  const env: Record<string, string> = { OTEL_SDK_DISABLED: launch.metrics ? 'false' : 'true' };
  if (mesh !== undefined) env.NODE_EXTRA_CA_CERTS = mesh.certificate.certFile;
  const { server, started } = spawnServer(
    launch.name,
    process.execPath,
    [...(launch.nodeFlags ?? []), RELAY_MAIN, '--config', configFile],
    env,
    launch.metrics ? metricsUrlOf : undefined,
  );
  await started;
  await server.waitForLine(/"msg":"relay serving"/);
  return server;
}

interface DerperLaunch {
  readonly name: string;
  readonly workDir: string;
  readonly port: number;
  readonly mesh?: MeshLaunch;
}

async function startDerper(launch: DerperLaunch): Promise<ServerProcess> {
  const { mesh } = launch;
  const args = [
    '-a',
    `${HOST}:${launch.port}`,
    '-http-port',
    '-1',
    '-stun=false',
    '-c',
    path.join(launch.workDir, `${launch.name}.key`),
  ];
  const env: Record<string, string> = {};
  if (mesh !== undefined) {
    args.push('-certmode', 'manual', '-certdir', mesh.certificate.dir, '-hostname', HOST);
    args.push(
      '-mesh-psk-file',
      mesh.meshKeyFile,
      '-mesh-with',
      mesh.peerPorts.map((port) => `${HOST}:${port}`).join(','),
    );
    env.SSL_CERT_FILE = mesh.certificate.certFile;
  }
  const { server, started } = spawnServer(launch.name, DERPER, args, env);
  await started;
  await server.waitForLine(/derper: serving on/);
  // derper logs "serving" before it creates its certificate and listens: wait for the listener.
  await waitForListener(server, launch.port);
  return server;
}

async function waitForListener(server: ServerProcess, port: number): Promise<void> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (!(await acceptsConnections(port))) {
    if (performance.now() > deadline) {
      throw new Error(
        `${server.name} did not listen on ${HOST}:${port} within ${READY_TIMEOUT_MS} ms\n${server.outputTail()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, PORT_POLL_MS));
  }
}

async function acceptsConnections(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://${HOST}:${port}/derp/probe`, { signal: AbortSignal.timeout(1_000) });
    await response.body?.cancel();
    return true;
  } catch (error) {
    // A TLS listener answers plain HTTP by closing the connection: it is listening all the same.
    return (error as { cause?: { code?: string } }).cause?.code !== 'ECONNREFUSED';
  }
}

export function derperMissing(): string | undefined {
  return existsSync(DERPER) ? undefined : `${DERPER} is missing; run \`bash scripts/build-go-tools.sh\``;
}

function singleSetup(name: string, port: number, server: ServerProcess): RelaySetup {
  const url = `http://${HOST}:${port}/derp`;
  return { name, url, recvUrl: url, servers: [server], loadEnv: {} };
}

/** One of our relays, plain HTTP, metrics on or off. */
export async function startOursSingle(
  name: string,
  workDir: string,
  metrics: boolean,
  nodeFlags?: readonly string[],
): Promise<RelaySetup> {
  const port = await freePort();
  const server = await startOurs({
    name,
    workDir,
    metrics,
    port,
    ...(nodeFlags !== undefined && { nodeFlags }),
  });
  return singleSetup(name, port, server);
}

export async function startDerperSingle(name: string, workDir: string): Promise<RelaySetup> {
  const port = await freePort();
  return singleSetup(name, port, await startDerper({ name, workDir, port }));
}

type StartMeshMember = (name: string, port: number, mesh: MeshLaunch) => Promise<ServerProcess>;

/**
 * Starts two servers meshed with each other over TLS, one after the other (the first derper
 * creates the shared certificate), and waits until each logged `linkUp`.
 */
async function startMeshPair(
  name: string,
  certificate: LoopbackCertificate,
  meshKeyFile: string,
  startMember: StartMeshMember,
  linkUp: RegExp,
): Promise<RelaySetup> {
  const ports = [await freePort(), await freePort()];
  const servers: ServerProcess[] = [];
  for (const [index, port] of ports.entries()) {
    const peerPorts = ports.filter((other) => other !== port);
    servers.push(await startMember(`${name}-${index}`, port, { certificate, meshKeyFile, peerPorts }));
  }
  await Promise.all(servers.map((server) => server.waitForLine(linkUp)));
  return {
    name,
    url: `https://${HOST}:${ports[0]}/derp`,
    recvUrl: `https://${HOST}:${ports[1]}/derp`,
    servers,
    loadEnv: { SSL_CERT_FILE: certificate.certFile },
  };
}

/**
 * Two meshed relays over TLS: derpers (each logs "connected; N peers" once its watch connection is
 * up) or ours with metrics on. The first derper creates the certificate, so derper's pair starts first.
 */
export function startMesh(
  kind: 'ours' | 'derper',
  name: string,
  workDir: string,
  certificate: LoopbackCertificate,
  meshKeyFile: string,
): Promise<RelaySetup> {
  const startMember: StartMeshMember =
    kind === 'derper'
      ? (member, port, mesh) => startDerper({ name: member, workDir, port, mesh })
      : (member, port, mesh) => startOurs({ name: member, workDir, metrics: true, port, mesh });
  const linkUp = kind === 'derper' ? /mesh\(.*\): connected;/ : /"msg":"mesh link up"/;
  return startMeshPair(name, certificate, meshKeyFile, startMember, linkUp);
}
