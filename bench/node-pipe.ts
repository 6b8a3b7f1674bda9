import net from 'node:net';
import { readProxyScriptPorts } from './proxy-script-args.ts';

/**
 * The reference point from the proxy issue: the smallest TCP proxy Node can do, `client.pipe(upstream)
 * .pipe(client)` with nothing else on the path, plus the error handling that keeps one broken
 * connection from taking the process down. Our proxy should land near it; the gap is what pools,
 * health checks and metrics cost.
 *
 * Run: `node node-pipe.ts --listen PORT --upstream PORT` (both on 127.0.0.1).
 */

const HOST = '127.0.0.1';

const { listenPort, upstreamPort } = readProxyScriptPorts();

const server = net.createServer((client) => {
  const upstream = net.connect({ host: HOST, port: upstreamPort });
  const closeBoth = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', closeBoth);
  upstream.on('error', closeBoth);
  client.pipe(upstream).pipe(client);
});
server.listen({ host: HOST, port: listenPort, backlog: 4096 });
process.on('SIGTERM', () => process.exit(0));
