import { parseArgs } from 'node:util';

function portArg(name: string, raw: string | undefined): number {
  const port = Number(raw);
  if (raw === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`--${name} ${raw} is not allowed: give a TCP port 1-65535`);
  }
  return port;
}

/**
 * The command line every Node proxy script of the proxy bench takes (`proxies.ts` starts them):
 * `--listen PORT --upstream PORT`, both on 127.0.0.1.
 */
export function readProxyScriptPorts(): { listenPort: number; upstreamPort: number } {
  const { values } = parseArgs({ options: { listen: { type: 'string' }, upstream: { type: 'string' } } });
  return { listenPort: portArg('listen', values.listen), upstreamPort: portArg('upstream', values.upstream) };
}
