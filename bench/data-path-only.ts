import net from 'node:net';
// The proxy's own data path, reached past the package's public surface on purpose: this bench
// contender is that layer alone, so that the table separates its cost from the rest of the proxy.
import { type ConnectionCells, ProxiedConnection } from '../packages/proxy/src/connection.ts';
import { dialTcp } from '../packages/proxy/src/dial.ts';
import { loadLibuvTcp, takeOverAccept } from '../packages/proxy/src/libuv-tcp.ts';
import { readProxyScriptPorts } from './proxy-script-args.ts';

/**
 * Our proxy's data path and nothing else: accept, dial, splice ({@link ProxiedConnection} on bare
 * libuv handles), with no pools, balancing, health checks, limits, timers beyond the dial deadline,
 * or metrics. It is the floor of what the proxy can cost per connection in Node; the gap from it to
 * `switchyard` is what everything else costs.
 *
 * Run: `node data-path-only.ts --listen PORT --upstream PORT` (both on 127.0.0.1).
 */

const HOST = '127.0.0.1';
const DIAL_TIMEOUT_MS = 10_000;

const { listenPort, upstreamPort } = readProxyScriptPorts();

const tcp = loadLibuvTcp();
const uncounted = { value: 0, add: () => {} };
const cells: ConnectionCells = {
  active: uncounted,
  bytesClientToUpstream: uncounted,
  bytesUpstreamToClient: uncounted,
  duration: { record: () => {} },
};
const options = { cells, idleTimeoutMs: 0, header: undefined, onClosed: () => {} };

const server = net.createServer();
server.listen({ host: HOST, port: listenPort, backlog: 4096 }, () => {
  takeOverAccept(server, (client) => {
    dialTcp(tcp, HOST, 4, upstreamPort, DIAL_TIMEOUT_MS, (error, upstream) => {
      if (error !== undefined || upstream === undefined) client.close();
      else new ProxiedConnection(tcp, client, upstream, options);
    });
  });
});
process.on('SIGTERM', () => process.exit(0));
