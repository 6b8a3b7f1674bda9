import { spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';

/**
 * The upstream every contender forwards to, in a process of its own: one port, two behaviours
 * chosen by the first byte the client sends.
 *
 * - `S` + payload length (uint64, big-endian): a discard sink. It counts the payload and, once all
 *   of it arrived, writes one ack byte; the load generator stops its clock on that byte. Bulk
 *   throughput is therefore "bytes the backend received", the same for every contender, and no
 *   contender needs to propagate a half-close.
 * - `E`: an echo of every byte, including the mode byte, until the client closes.
 *
 * Run: `node backend.ts [--port N]`; prints `{"port":N}` on stdout once it accepts connections.
 */

/** First byte of a bulk connection: the backend discards the payload and acks its last byte. */
export const MODE_SINK = 0x53;
/** First byte of an echo connection: the backend returns every byte. */
export const MODE_ECHO = 0x45;
/** Mode byte and the payload length as a big-endian uint64. */
export const BULK_HEADER_BYTES = 9;
/** What the sink writes once the whole payload arrived. */
export const BULK_ACK = Buffer.from('K');

function serveConnection(socket: net.Socket): void {
  let header: Buffer | undefined;
  let payloadBytesExpected = -1;
  let payloadBytesReceived = 0;
  socket.on('error', () => socket.destroy());

  const onSinkData = (chunk: Buffer): void => {
    payloadBytesReceived += chunk.length;
    if (payloadBytesReceived === payloadBytesExpected) socket.write(BULK_ACK);
  };

  const onFirstData = (chunk: Buffer): void => {
    header = header === undefined ? chunk : Buffer.concat([header, chunk]);
    if (header[0] === MODE_ECHO) {
      socket.off('data', onFirstData);
      socket.on('data', (data: Buffer) => socket.write(data));
      socket.write(header);
      return;
    }
    if (header[0] !== MODE_SINK) {
      socket.destroy();
      return;
    }
    if (header.length < BULK_HEADER_BYTES) return;
    payloadBytesExpected = Number(header.readBigUInt64BE(1));
    socket.off('data', onFirstData);
    socket.on('data', onSinkData);
    onSinkData(header.subarray(BULK_HEADER_BYTES));
  };
  socket.on('data', onFirstData);
}

function portFromArgs(args: readonly string[]): number {
  const index = args.indexOf('--port');
  if (index === -1) return 0;
  const port = Number(args[index + 1]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(
      `--port ${args[index + 1]} is not allowed: give a TCP port 0-65535 (0: any free port)`,
    );
  }
  return port;
}

const BACKEND_SCRIPT = import.meta.filename;
const READY_TIMEOUT_MS = 10_000;

export interface RunningBackend {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Starts the backend in a child process and resolves once it accepts connections. */
export function spawnBackend(): Promise<RunningBackend> {
  const child = spawn(process.execPath, [BACKEND_SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop();
      reject(new Error(`backend did not start: ${reason}`));
    };
    const timer = setTimeout(() => fail(`no port announced within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    child.once('error', (error) => fail(error.message));
    child.once('exit', (code, signal) => fail(`it exited (${code ?? signal})`));
    createInterface({ input: child.stdout }).once('line', (line) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const { port } = JSON.parse(line) as { port: number };
      resolve({ port, pid: child.pid as number, stop });
    });
  });
}

if (import.meta.main) {
  const server = net.createServer({ noDelay: true }, serveConnection);
  server.listen({ host: '127.0.0.1', port: portFromArgs(process.argv.slice(2)), backlog: 4096 }, () => {
    const address = server.address() as net.AddressInfo;
    process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}
