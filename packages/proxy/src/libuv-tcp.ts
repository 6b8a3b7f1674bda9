import type { Server } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { SwitchyardError } from '@switchyard/telemetry';

/**
 * Typed access to Node's own libuv TCP handles (`process.binding('tcp_wrap')` and
 * `process.binding('stream_wrap')`), the layer under `net.Socket`. The proxy's data path uses them
 * directly: a proxied connection costs two handles and a few request objects instead of two
 * `net.Socket` streams with their state machines, events and timers, and that difference is most
 * of the CPU time of a short connection (docs/benchmarks.md). This file is the only one that
 * touches the bindings; {@link loadLibuvTcp} checks that they look as Node 24's lib/net.js uses
 * them and refuses to start otherwise, with {@link LibuvTcpUnavailableError}. `process.binding` is
 * deprecated in documentation only (DEP0111): Node 24 warns about it only under
 * `--pending-deprecation`, and keeps `tcp_wrap` and `stream_wrap` on its allow-list.
 */

/** libuv's end-of-stream status. */
export const UV_EOF = -4095;
/** libuv's status for a request cancelled by closing its handle. */
export const UV_ECANCELED = -125;

/** A libuv TCP handle as Node's tcp_wrap exposes it (the methods lib/net.js calls). */
export interface TcpHandle {
  /**
   * Called after each read with `this` the handle; the byte count or error is in the shared state.
   * With a user buffer, a buffer returned here is where the next read goes.
   */
  onread: (this: TcpHandle) => Uint8Array | undefined;
  readonly writeQueueSize: number;
  readStart(): number;
  readStop(): number;
  /**
   * Reads land in `buffer` instead of a fresh allocation per read. Call it once per handle: each
   * call stacks another listener; `onread` returns the buffer to change to.
   */
  useUserBuffer(buffer: Uint8Array): void;
  writeBuffer(request: WriteRequest, chunk: Uint8Array): number;
  shutdown(request: ShutdownRequest): number;
  close(callback?: () => void): void;
  setNoDelay(enable: boolean): number;
  connect(request: ConnectRequest, address: string, port: number): number;
  connect6(request: ConnectRequest, address: string, port: number): number;
  getpeername(out: Partial<SocketAddress>): number;
  getsockname(out: Partial<SocketAddress>): number;
  /** The proxy's own back-reference from a handle to the object handling its events. */
  owner?: unknown;
}

export interface SocketAddress {
  address: string;
  family: string;
  port: number;
}

/** A write in flight; `oncomplete` runs (with `this` the request) only when the write went async. */
export interface WriteRequest {
  handle: TcpHandle;
  oncomplete: (this: WriteRequest, status: number) => void;
  async: boolean;
  /** Keeps the chunk alive while libuv still points into it. */
  buffer: Uint8Array | null;
  owner: unknown;
}

export interface ShutdownRequest {
  handle: TcpHandle;
  oncomplete: (this: ShutdownRequest, status: number) => void;
  owner: unknown;
}

export interface ConnectRequest {
  oncomplete: (this: ConnectRequest, status: number) => void;
  address: string;
  port: number;
  owner: unknown;
}

interface StreamBaseState {
  readonly [index: number]: number;
}

/** The bindings, once checked. */
export interface LibuvTcp {
  newSocket(): TcpHandle;
  newWriteRequest(): WriteRequest;
  newShutdownRequest(): ShutdownRequest;
  newConnectRequest(): ConnectRequest;
  /** Bytes read (positive), 0, or a negative libuv status, for the read being reported. */
  readResult(): number;
  /** True when the last `writeBuffer` left bytes queued in libuv (its `oncomplete` will run). */
  lastWriteWasAsync(): boolean;
}

/** Node lacks the libuv bindings the proxy's data path is built on. */
export class LibuvTcpUnavailableError extends SwitchyardError {
  constructor(what: string) {
    super(
      'SWY_ERR_PROXY_RUNTIME',
      `the proxy needs Node 24's libuv TCP bindings, and this Node (${process.version}) ${what}; ` +
        'run it with the Node 24 the repository pins (node_modules/.bin/node, or the node:24 image)',
    );
  }
}

type Constructor<T> = new (...args: unknown[]) => T;

function bindingOf(name: string): Record<string, unknown> | undefined {
  const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
  if (typeof binding !== 'function') return undefined;
  try {
    return binding.call(process, name) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

let loaded: LibuvTcp | undefined;

/** The checked bindings; throws {@link LibuvTcpUnavailableError} when they are not as expected. */
export function loadLibuvTcp(): LibuvTcp {
  if (loaded !== undefined) return loaded;
  const tcp = bindingOf('tcp_wrap');
  const stream = bindingOf('stream_wrap');
  if (tcp === undefined || stream === undefined) {
    throw new LibuvTcpUnavailableError("has no process.binding('tcp_wrap') or ('stream_wrap')");
  }
  const TCP = tcp.TCP as Constructor<TcpHandle> | undefined;
  const TCPConnectWrap = tcp.TCPConnectWrap as Constructor<ConnectRequest> | undefined;
  const socketType = (tcp.constants as { SOCKET?: number } | undefined)?.SOCKET;
  const WriteWrap = stream.WriteWrap as Constructor<WriteRequest> | undefined;
  const ShutdownWrap = stream.ShutdownWrap as Constructor<ShutdownRequest> | undefined;
  const state = stream.streamBaseState as StreamBaseState | undefined;
  const readBytesOrError = stream.kReadBytesOrError as number | undefined;
  const lastWriteWasAsync = stream.kLastWriteWasAsync as number | undefined;
  const methods = ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'shutdown', 'close'];
  if (
    typeof TCP !== 'function' ||
    typeof TCPConnectWrap !== 'function' ||
    typeof WriteWrap !== 'function' ||
    typeof ShutdownWrap !== 'function' ||
    typeof socketType !== 'number' ||
    state === undefined ||
    typeof readBytesOrError !== 'number' ||
    typeof lastWriteWasAsync !== 'number' ||
    !methods.every((method) => typeof (TCP.prototype as Record<string, unknown>)[method] === 'function')
  ) {
    throw new LibuvTcpUnavailableError('has TCP bindings of a different shape');
  }
  loaded = {
    newSocket: () => new TCP(socketType),
    newWriteRequest: () => new WriteWrap(),
    newShutdownRequest: () => new ShutdownWrap(),
    newConnectRequest: () => new TCPConnectWrap(),
    readResult: () => state[readBytesOrError] as number,
    lastWriteWasAsync: () => state[lastWriteWasAsync] !== 0,
  };
  return loaded;
}

/** The error name of a negative libuv status (`ECONNREFUSED`, ...), or `UNKNOWN`. */
export function errorName(status: number): string {
  try {
    return getSystemErrorName(status);
  } catch {
    return 'UNKNOWN';
  }
}

/** What `net.Server` keeps of its listening libuv handle, in `server._handle`. */
interface ListenHandle {
  onconnection: (status: number, clientHandle: TcpHandle | undefined) => void;
}

/**
 * Makes the listening `server` hand each accepted connection's libuv handle to `accept`, not
 * reading yet, instead of wrapping it in a `net.Socket`: it replaces the accept callback
 * (`server._handle.onconnection`, as in Node 24's lib/net.js). A failed accept(2) (EMFILE, ENFILE,
 * ECONNABORTED) concerns one client and is skipped; libuv keeps listening. Throws
 * {@link LibuvTcpUnavailableError} when the server's handle does not look like that.
 */
export function takeOverAccept(server: Server, accept: (handle: TcpHandle) => void): void {
  const handle = (server as unknown as { _handle?: Partial<ListenHandle> | null })._handle;
  if (typeof handle?.onconnection !== 'function') {
    throw new LibuvTcpUnavailableError("has a net.Server without the listening handle's onconnection");
  }
  (handle as ListenHandle).onconnection = (status, clientHandle) => {
    if (status < 0 || clientHandle === undefined) return;
    accept(clientHandle);
  };
}

/** The address at the other end of `handle`, or undefined once the peer is gone. */
export function peerAddress(handle: TcpHandle): SocketAddress | undefined {
  const out: Partial<SocketAddress> = {};
  return handle.getpeername(out) === 0 ? (out as SocketAddress) : undefined;
}

/** The local address of `handle`, or undefined when it cannot be read. */
export function localAddress(handle: TcpHandle): SocketAddress | undefined {
  const out: Partial<SocketAddress> = {};
  return handle.getsockname(out) === 0 ? (out as SocketAddress) : undefined;
}
