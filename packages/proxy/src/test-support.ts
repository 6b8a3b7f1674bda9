// Real-socket helpers for the proxy's tests: tagged backends, clients, and a proxy with live metrics.
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger, type Logger, standaloneMetrics } from '@switchyard/telemetry';
import { checkProxyConfig, type ProxyConfig, proxyConfigSchema } from './config.ts';
import { proxyCatalog } from './metrics.ts';
import { ProxyServer } from './proxy-server.ts';

export const quietLogger: Logger = createLogger({
  name: 'test',
  stream: new Writable({ write: (_chunk, _encoding, done) => done() }),
});

/** A backend that greets each connection with `<name>\n`, then echoes; it remembers its sockets. */
export interface TaggedBackend {
  readonly name: string;
  readonly server: Server;
  port: number;
  readonly sockets: Set<Socket>;
  accepted: number;
  close(): Promise<void>;
  restart(): Promise<void>;
}

export async function startBackend(
  name: string,
  options: { port?: number; greet?: boolean; onSocket?: (socket: Socket) => void } = {},
): Promise<TaggedBackend> {
  const sockets = new Set<Socket>();
  const backend: TaggedBackend = {
    name,
    server: createServer({ allowHalfOpen: true }, (socket) => {
      backend.accepted += 1;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      if (options.onSocket !== undefined) {
        options.onSocket(socket);
        return;
      }
      if (options.greet !== false) socket.write(`${name}\n`);
      socket.pipe(socket);
    }),
    port: options.port ?? 0,
    sockets,
    accepted: 0,
    close: async () => {
      const closed = once(backend.server, 'close');
      backend.server.close();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    restart: async () => {
      backend.server.listen(backend.port, '127.0.0.1');
      await once(backend.server, 'listening');
    },
  };
  backend.server.listen(backend.port, '127.0.0.1');
  await once(backend.server, 'listening');
  backend.port = (backend.server.address() as { port: number }).port;
  return backend;
}

/** A port nothing listens on (bound then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** Connects through the proxy and resolves with the greeting line the backend sent. */
export async function greeting(
  port: number,
  localAddress = '127.0.0.1',
): Promise<{ name: string; socket: Socket }> {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  socket.setEncoding('utf8');
  let text = '';
  return new Promise((resolve, reject) => {
    socket.on('error', reject);
    socket.on('close', () =>
      reject(new Error(`connection closed before a greeting (got ${JSON.stringify(text)})`)),
    );
    const onData = (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\n');
      if (end >= 0) {
        socket.off('data', onData);
        socket.removeAllListeners('close');
        socket.off('error', reject);
        resolve({ name: text.slice(0, end), socket });
      }
    };
    socket.on('data', onData);
  });
}

/** Connects, sends nothing, and resolves once the proxy closes the connection (a rejection). */
export async function expectClosed(port: number): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  socket.resume();
  await once(socket, 'close');
}

/** Closes a client socket and waits until it is fully closed. */
export async function closeClient(socket: Socket): Promise<void> {
  if (socket.closed) return;
  const closed = once(socket, 'close');
  socket.end();
  await closed;
}

export interface RunningProxy {
  readonly proxy: ProxyServer;
  readonly ports: Map<string, number>;
  /** The Prometheus exposition of the proxy's metrics now. */
  scrape(): Promise<string>;
  /** One sample's value from the exposition, e.g. `sample('switchyard_proxy_connections_total', { upstream: 'a' })`. */
  sample(name: string, labels?: Record<string, string>): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** Fills schema defaults (as a config file would get them) and checks the config. */
export function proxyConfig(input: unknown): ProxyConfig {
  return checkProxyConfig(proxyConfigSchema.parse(input));
}

export async function startProxy(input: unknown): Promise<RunningProxy> {
  const config = proxyConfig(input);
  const recorded = standaloneMetrics(proxyCatalog);
  const proxy = new ProxyServer(config, recorded.metrics, quietLogger);
  const bound = await proxy.start();
  const ports = new Map([...bound].map(([name, address]) => [name, address.port]));
  const scrape = async () => recorded.scrape();
  return {
    proxy,
    ports,
    scrape,
    sample: async (name, labels = {}) => {
      for (const line of (await scrape()).split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) {
          return Number(line.slice(line.lastIndexOf(' ') + 1));
        }
      }
      return undefined;
    },
    stop: async () => {
      proxy.stopAccepting();
      proxy.forceClose();
      await proxy.drained();
      proxy.close();
    },
  };
}
