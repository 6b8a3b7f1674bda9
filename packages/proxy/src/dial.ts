import { lookup } from 'node:dns';
import { type ConnectRequest, errorName, type LibuvTcp, type TcpHandle, UV_ECANCELED } from './libuv-tcp.ts';
import type { DialFailureReason } from './metrics.ts';

/** The error name a dial that ran out of time reports (as libuv would for a kernel timeout). */
export const DIAL_TIMEOUT = 'ETIMEDOUT';

const REASON_BY_ERROR: ReadonlyMap<string, DialFailureReason> = new Map([
  ['ECONNREFUSED', 'refused'],
  ['ECONNRESET', 'reset'],
  ['EPIPE', 'reset'],
  ['ECONNABORTED', 'reset'],
  ['EHOSTUNREACH', 'unreachable'],
  ['ENETUNREACH', 'unreachable'],
  ['EADDRNOTAVAIL', 'unreachable'],
  ['EHOSTDOWN', 'unreachable'],
  ['ENETDOWN', 'unreachable'],
  ['ENOTFOUND', 'unreachable'],
  ['EAI_AGAIN', 'unreachable'],
  [DIAL_TIMEOUT, 'timeout'],
]);

/**
 * Why a connection attempt failed, from its error name (`ECONNREFUSED`, ...): the `reason` of
 * dial_failures, and the connect part of a health check's result. Unknown names are `other`.
 */
export function dialFailureReason(error: string): DialFailureReason {
  return REASON_BY_ERROR.get(error) ?? 'other';
}

/**
 * Receives the outcome of one {@link dialTcp}, exactly once: a connected handle with no error, or
 * an error name (`ECONNREFUSED`, `ETIMEDOUT`, `ENOTFOUND`, ...) and no handle.
 */
export type DialDone = (error: string | undefined, handle: TcpHandle | undefined) => void;

/** One connection attempt: the handle, its deadline, and who hears the outcome. */
class Dial {
  readonly #tcp: LibuvTcp;
  readonly #done: DialDone;
  readonly #timer: NodeJS.Timeout;
  #handle: TcpHandle | undefined;
  #settled = false;

  constructor(tcp: LibuvTcp, timeoutMs: number, done: DialDone) {
    this.#tcp = tcp;
    this.#done = done;
    this.#timer = setTimeout(() => this.#settle(DIAL_TIMEOUT), timeoutMs);
  }

  connect(address: string, family: number, port: number): void {
    if (this.#settled) return;
    const handle = this.#tcp.newSocket();
    this.#handle = handle;
    const request = this.#tcp.newConnectRequest();
    request.oncomplete = onConnectComplete;
    request.address = address;
    request.port = port;
    request.owner = this;
    const status =
      family === 6 ? handle.connect6(request, address, port) : handle.connect(request, address, port);
    if (status !== 0) this.#settle(errorName(status));
  }

  connected(status: number): void {
    // Cancelled: the deadline passed and closed the handle, which settled the dial already.
    if (status === UV_ECANCELED && this.#settled) return;
    this.#settle(status === 0 ? undefined : errorName(status));
  }

  resolved(error: NodeJS.ErrnoException | null, address: string, family: number, port: number): void {
    if (error !== null) this.#settle(error.code ?? 'ENOTFOUND');
    else this.connect(address, family, port);
  }

  #settle(error: string | undefined): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    const handle = this.#handle;
    if (error === undefined && handle !== undefined) {
      this.#done(undefined, handle);
      return;
    }
    handle?.close();
    this.#done(error, undefined);
  }
}

function onConnectComplete(this: ConnectRequest, status: number): void {
  (this.owner as Dial).connected(status);
}

/**
 * Opens a TCP connection to `host:port` within `timeoutMs` on a bare libuv handle. `host` is an IP
 * address (`ipFamily` 4 or 6, as `net.isIP` says) or a name (`ipFamily` 0) looked up on every dial
 * with `dns.lookup`, as `net.connect` does, so that a Service's changing address is followed.
 */
export function dialTcp(
  tcp: LibuvTcp,
  host: string,
  ipFamily: number,
  port: number,
  timeoutMs: number,
  done: DialDone,
): void {
  const dial = new Dial(tcp, timeoutMs, done);
  if (ipFamily !== 0) {
    dial.connect(host, ipFamily, port);
    return;
  }
  lookup(host, (error, address, family) => dial.resolved(error, address, family, port));
}
