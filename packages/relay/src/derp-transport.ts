import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as connectTcp, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as connectTls } from 'node:tls';
import { ConfigError } from '@switchyard/telemetry';
import WebSocket from 'ws';
import { DerpUpgradeError } from './errors.ts';
import { webSocketByteStream } from './websocket-stream.ts';

/**
 * How a client reaches a relay: raw TCP (DERP from the first byte, as `RelayServer.listen`
 * serves it), HTTP(S) with `Upgrade: DERP`, or WebSocket with the `derp` subprotocol.
 */
export type DerpTarget =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'http'; readonly url: URL; readonly fastStart: boolean }
  | { readonly kind: 'websocket'; readonly url: URL };

/** Certificate checks for https:// and wss:// URLs; the system's roots by default. */
export interface DerpTlsOptions {
  /** Trusted CA certificates (PEM) instead of the system's. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** Default true. False accepts any certificate: for tests only. */
  readonly rejectUnauthorized?: boolean;
  /** TLS server name (SNI), when it differs from the URL's host. */
  readonly servername?: string;
}

export interface DerpTargetOptions {
  readonly url?: string;
  readonly host?: string;
  readonly port?: number;
  readonly fastStart?: boolean;
  readonly serverKey?: Uint8Array;
}

const URL_SCHEMES = new Map<string, 'http' | 'websocket'>([
  ['http:', 'http'],
  ['https:', 'http'],
  ['ws:', 'websocket'],
  ['wss:', 'websocket'],
]);

/** Validates where to connect: a `url`, or `host` + `port` for raw TCP, never both. */
export function derpTarget(options: DerpTargetOptions): DerpTarget {
  const { url, host, port, fastStart = false } = options;
  if (url === undefined) {
    if (host === undefined || port === undefined) {
      throw new ConfigError('url', 'DERP client needs a url (http://host:port/derp) or a host and port');
    }
    if (fastStart) throw new ConfigError('fastStart', 'DERP client fastStart needs an http(s):// url');
    return { kind: 'tcp', host, port };
  }
  if (host !== undefined || port !== undefined) {
    throw new ConfigError('url', 'DERP client takes a url or a host and port, not both');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(
      'url',
      `DERP client url ${JSON.stringify(url)} is not a URL; e.g. http://127.0.0.1:3340/derp`,
    );
  }
  const kind = URL_SCHEMES.get(parsed.protocol);
  if (kind === undefined) {
    throw new ConfigError(
      'url',
      `DERP client url scheme "${parsed.protocol}" is not supported; use http:, https:, ws: or wss:`,
    );
  }
  if (kind === 'websocket') {
    if (fastStart)
      throw new ConfigError('fastStart', 'DERP client fastStart needs an http(s):// url, not WebSocket');
    return { kind, url: parsed };
  }
  if (fastStart && options.serverKey === undefined) {
    // The client seals its login to the server key before the server has said anything.
    throw new ConfigError('fastStart', 'DERP client fastStart needs the relay key pinned in serverKey');
  }
  return { kind, url: parsed, fastStart };
}

/** The target as text for messages: the URL, or host:port for raw TCP. */
export function describeTarget(target: DerpTarget): string {
  return target.kind === 'tcp' ? `${target.host}:${target.port}` : target.url.href;
}

export interface OpenOptions {
  /** Aborting destroys the connection attempt; the open rejects with the signal's reason. */
  readonly signal: AbortSignal;
  readonly tls?: DerpTlsOptions;
  /** Fast start only: bytes sent right behind the HTTP request (the client info frame). */
  readonly preamble?: Uint8Array;
}

/**
 * Opens a byte stream that carries DERP frames from its first byte: the TCP socket, the socket
 * after the HTTP upgrade (bytes the server sent behind its 101 put back in front), or a WebSocket
 * whose binary messages are concatenated.
 */
export function openDerpStream(target: DerpTarget, options: OpenOptions): Promise<Duplex> {
  options.signal.throwIfAborted();
  switch (target.kind) {
    case 'tcp':
      return openTcp(target.host, target.port, options.signal);
    case 'http':
      return target.fastStart ? openFastStart(target.url, options) : openUpgrade(target.url, options);
    case 'websocket':
      return openWebSocket(target.url, options);
  }
}

function whenConnected(socket: Socket, connectEvent: string, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const onAbort = () => socket.destroy(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (error) => {
      signal.removeEventListener('abort', onAbort);
      reject(error);
    });
    socket.once(connectEvent, () => {
      signal.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

function openTcp(host: string, port: number, signal: AbortSignal): Promise<Socket> {
  return whenConnected(connectTcp({ host, port }), 'connect', signal);
}

const UPGRADE_HEADERS = { Upgrade: 'DERP', Connection: 'Upgrade' } as const;

function openUpgrade(url: URL, options: OpenOptions): Promise<Duplex> {
  const { signal } = options;
  const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
    method: 'GET',
    agent: false,
    headers: UPGRADE_HEADERS,
    ...tlsFields(options.tls),
  });
  return new Promise((resolve, reject) => {
    const onAbort = () => request.destroy(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    const settle = () => signal.removeEventListener('abort', onAbort);
    request.once('error', (error) => {
      settle();
      reject(error);
    });
    // Node emits 'upgrade' only for a 101 reply; anything else is an ordinary response.
    request.once('upgrade', (_response: IncomingMessage, socket: Socket, head: Buffer) => {
      settle();
      socket.setNoDelay(true);
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    request.once('response', (response: IncomingMessage) => {
      void readBodyStart(response).then((body) => {
        settle();
        request.destroy();
        reject(
          new DerpUpgradeError(
            url.href,
            response.statusCode ?? 0,
            `HTTP ${response.statusCode}, not 101`,
            body,
          ),
        );
      });
    });
    request.end();
  });
}

const BODY_START_LENGTH = 200;

/** The first bytes of a refusal body, for the error message; never waits for more than that. */
function readBodyStart(response: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    const finish = () => resolve(body.slice(0, BODY_START_LENGTH).trim());
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      body += chunk;
      if (body.length >= BODY_START_LENGTH) finish();
    });
    response.once('end', finish);
    response.once('error', finish);
    response.once('close', finish);
  });
}

/**
 * derper's fast start (derphttp sends it when a TLS meta certificate told it the server key): the
 * request carries `Derp-Fast-Start: 1`, the server hijacks the connection without any HTTP reply,
 * and the client's login frame follows the request at once, saving a round trip.
 */
async function openFastStart(url: URL, options: OpenOptions): Promise<Duplex> {
  const { signal } = options;
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const socket =
    url.protocol === 'https:'
      ? await whenConnected(
          connectTls({ host: url.hostname, port, servername: url.hostname, ...tlsFields(options.tls) }),
          'secureConnect',
          signal,
        )
      : await openTcp(url.hostname, port, signal);
  const request =
    `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
    'Upgrade: DERP\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\n\r\n';
  socket.write(request);
  if (options.preamble !== undefined) socket.write(options.preamble);
  const first = await firstChunk(socket, url, signal);
  if (looksLikeHttp(first)) {
    socket.destroy();
    throw fastStartRefusal(url, first);
  }
  socket.unshift(first);
  return socket;
}

function firstChunk(socket: Socket, url: URL, signal: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      signal.removeEventListener('abort', onAbort);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.pause();
    };
    const onAbort = () => socket.destroy(signal.reason as Error);
    const onData = (chunk: Buffer) => {
      cleanup();
      resolve(chunk);
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onClose = () =>
      onError(
        new DerpUpgradeError(
          url.href,
          0,
          'the server closed the connection before answering the fast start (a refused login, or no DERP on this URL)',
        ),
      );
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

const HTTP_PREFIX = Buffer.from('HTTP/');

function looksLikeHttp(chunk: Buffer): boolean {
  return chunk.subarray(0, HTTP_PREFIX.length).equals(HTTP_PREFIX);
}

function fastStartRefusal(url: URL, chunk: Buffer): DerpUpgradeError {
  const text = chunk.toString('latin1');
  const status = Number(/^HTTP\/\d(?:\.\d)? (\d{3})/.exec(text)?.[1] ?? 0);
  const bodyStart = text.indexOf('\r\n\r\n');
  const body = bodyStart < 0 ? '' : text.slice(bodyStart + 4, bodyStart + 4 + BODY_START_LENGTH).trim();
  return new DerpUpgradeError(
    url.href,
    status,
    `an HTTP ${status} reply to Derp-Fast-Start, not DERP frames`,
    body,
  );
}

function openWebSocket(url: URL, options: OpenOptions): Promise<Duplex> {
  const { signal } = options;
  // No compression: DERP carries encrypted WireGuard packets, and derper disables it too.
  const socket = new WebSocket(url, 'derp', { perMessageDeflate: false, ...tlsFields(options.tls) });
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      socket.terminate();
      reject(error);
    };
    const onAbort = () => fail(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (error) => fail(subprotocolRefusal(url, error) ?? error));
    socket.once('unexpected-response', (_request, response: IncomingMessage) => {
      void readBodyStart(response).then((body) =>
        fail(
          new DerpUpgradeError(
            url.href,
            response.statusCode ?? 0,
            `HTTP ${response.statusCode}, not 101`,
            body,
          ),
        ),
      );
    });
    socket.once('open', () => {
      settled = true;
      signal.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      resolve(webSocketByteStream(socket));
    });
  });
}

// ws checks the subprotocol of a 101 reply itself and fails the handshake with a plain Error
// ("Server sent no subprotocol", "... an invalid subprotocol"); that is a refused upgrade too.
function subprotocolRefusal(url: URL, error: Error): DerpUpgradeError | undefined {
  if (!/subprotocol/i.test(error.message)) return undefined;
  return new DerpUpgradeError(url.href, 101, `${error.message}; a DERP server answers with "derp"`);
}

function tlsFields(tls: DerpTlsOptions | undefined): Record<string, unknown> {
  if (tls === undefined) return {};
  const fields: Record<string, unknown> = {};
  if (tls.ca !== undefined) fields.ca = tls.ca;
  if (tls.rejectUnauthorized !== undefined) fields.rejectUnauthorized = tls.rejectUnauthorized;
  if (tls.servername !== undefined) fields.servername = tls.servername;
  return fields;
}
