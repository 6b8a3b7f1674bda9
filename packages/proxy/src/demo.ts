import { connect, createServer, type Server } from 'node:net';
import { ListenError, type Logger, splitHostPort } from '@switchyard/telemetry';

/**
 * The built-in demo: echo backends on the configured upstream addresses, and synthetic clients
 * sending through the proxy's listeners, so that `npm start` moves every proxy metric.
 */
export async function startDemoBackends(addresses: readonly string[]): Promise<Server[]> {
  const servers: Server[] = [];
  for (const address of addresses) {
    const { host, port } = splitHostPort(address);
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {});
      socket.pipe(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new ListenError('demo backend', address, error)),
      );
      server.listen(port, host, resolve);
    });
    servers.push(server);
  }
  return servers;
}

export interface DemoTrafficOptions {
  readonly targets: ReadonlyArray<{ host: string; port: number }>;
  readonly connectionsPerSecond: number;
  readonly messageBytes: number;
  readonly logger: Logger;
}

/** Opens a client per tick to each target in turn: send a message, read its echo, close. */
export function startDemoTraffic(options: DemoTrafficOptions): { stop(): void } {
  let next = 0;
  let failures = 0;
  const message = Buffer.alloc(options.messageBytes, 0x78);
  const timer = setInterval(
    () => {
      const target = options.targets[next++ % options.targets.length];
      if (target === undefined) return;
      let echoed = 0;
      const socket = connect(target, () => socket.write(message));
      socket.on('data', (chunk: Buffer) => {
        echoed += chunk.length;
        if (echoed >= message.length) socket.end();
      });
      socket.on('error', (error: NodeJS.ErrnoException) => {
        failures += 1;
        if (failures === 1) options.logger.warn('demo client failed', { code: error.code });
      });
    },
    Math.max(1, Math.round(1000 / options.connectionsPerSecond)),
  );
  return { stop: () => clearInterval(timer) };
}
