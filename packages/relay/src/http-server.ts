import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type CountCell,
  type HttpServerHandles,
  instrumentHttpServer,
  ListenError,
  type RouteClassifier,
  recordHttpRequest,
} from '@switchyard/telemetry';
import { type WebSocket, WebSocketServer } from 'ws';
import { MAX_FRAME_SIZE, PROTOCOL_VERSION } from './codec.ts';
import type { RelayServer } from './relay-server.ts';
import { webSocketByteStream } from './websocket-stream.ts';

/** Every path the relay's HTTP listener answers; the bounded `http.route` label values. */
export const RELAY_HTTP_ROUTES = [
  '/',
  '/derp',
  '/derp/probe',
  '/derp/latency-check',
  '/generate_204',
] as const;

/** derphttp's header asking the server to skip the 101 response and speak DERP at once. */
const FAST_START_HEADER = 'derp-fast-start';
const CHALLENGE_HEADER = 'x-tailscale-challenge';
const CHALLENGE_RESPONSE_HEADER = 'X-Tailscale-Response';
const CHALLENGE = /^[A-Za-z0-9._-]{1,64}$/;

export interface RelayHttpServerOptions {
  /** HTTP server metrics (the telemetry package's), recorded for plain requests and upgrades. */
  readonly http?: { readonly handles: HttpServerHandles; readonly classify: RouteClassifier };
  /** PEM files: serve HTTPS instead of plain HTTP. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
}

/**
 * The relay's HTTP surface, as derper serves it: `/derp` takes `Upgrade: DERP` (with or without
 * `Derp-Fast-Start: 1`) and WebSocket with the `derp` subprotocol, and hands the upgraded stream to
 * the RelayServer; `/derp/probe` and `/derp/latency-check` answer latency probes; `/generate_204`
 * answers captive-portal checks, echoing a valid `X-Tailscale-Challenge`.
 */
export class RelayHttpServer {
  readonly #relay: RelayServer;
  readonly #websocketConnections: CountCell;
  readonly #server: Server;
  readonly #webSockets: WebSocketServer;
  readonly #http: RelayHttpServerOptions['http'];

  constructor(relay: RelayServer, options: RelayHttpServerOptions = {}) {
    this.#relay = relay;
    this.#websocketConnections = relay.cells.websocketConnections;
    this.#http = options.http;
    const tls = options.tls;
    this.#server =
      tls === undefined
        ? createHttpServer({ noDelay: true })
        : createHttpsServer({
            noDelay: true,
            cert: readFileSync(tls.certFile),
            key: readFileSync(tls.keyFile),
          });
    if (this.#http !== undefined) instrumentHttpServer(this.#server, this.#http.handles, this.#http.classify);
    this.#server.on('request', (request: IncomingMessage, response: ServerResponse) =>
      this.#onRequest(request, response),
    );
    this.#server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) =>
      this.#onUpgrade(request, socket, head),
    );
    this.#server.on('clientError', (_error, socket: Duplex) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    this.#webSockets = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_SIZE,
      handleProtocols: (protocols) => (protocols.has('derp') ? 'derp' : false),
    });
  }

  /** Resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<AddressInfo> {
    const server = this.#server;
    return new Promise((resolve, reject) => {
      server.once('error', (error) =>
        reject(new ListenError('relay HTTP listener', `${host}:${port}`, error)),
      );
      server.listen(port, host, () => resolve(server.address() as AddressInfo));
    });
  }

  /**
   * Stops accepting and closes plain HTTP connections. Upgraded streams belong to the relay and are
   * closed by `RelayServer.close`; the listening socket is released at once either way.
   */
  close(): void {
    this.#webSockets.close();
    this.#server.close();
    this.#server.closeAllConnections();
  }

  #onRequest(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '/').split('?')[0];
    switch (path) {
      case '/derp/probe':
      case '/derp/latency-check':
        answerProbe(request, response);
        return;
      case '/generate_204':
        answerNoContent(request, response);
        return;
      case '/derp':
        response.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8' });
        response.end('DERP requires connection upgrade\n');
        return;
      case '/':
        response.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        response.end('Switchyard DERP relay. Clients connect to /derp.\n');
        return;
      default:
        response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
        response.end('not found\n');
    }
  }

  #onUpgrade(request: IncomingMessage, socket: Socket, head: Buffer): void {
    const started = performance.now();
    socket.on('error', () => socket.destroy());
    const path = (request.url ?? '/').split('?')[0];
    const upgrade = (request.headers.upgrade ?? '').toLowerCase();
    if (path !== '/derp' || (upgrade !== 'derp' && upgrade !== 'websocket')) {
      const status = path === '/derp' ? 426 : 404;
      socket.end(
        `HTTP/1.1 ${status} ${status === 426 ? 'Upgrade Required' : 'Not Found'}\r\nConnection: close\r\n\r\n`,
      );
      this.#recordUpgrade(request, status, started);
      return;
    }
    const protocols = request.headers['sec-websocket-protocol'] ?? '';
    if (upgrade === 'websocket' && protocols.includes('derp')) {
      this.#acceptWebSocket(request, socket, head, started);
      return;
    }
    // Upgrade: DERP, or the earliest clients' "Upgrade: WebSocket" that spoke plain DERP framing.
    socket.setNoDelay(true);
    if (request.headers[FAST_START_HEADER] !== '1') {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\n' +
          'Upgrade: DERP\r\n' +
          'Connection: Upgrade\r\n' +
          `Derp-Version: ${PROTOCOL_VERSION}\r\n` +
          `Derp-Public-Key: ${Buffer.from(this.#relay.publicKey).toString('hex')}\r\n\r\n`,
      );
    }
    this.#recordUpgrade(request, 101, started);
    if (head.length > 0) socket.unshift(head);
    this.#relay.handle(socket, {
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      websocket: false,
    });
  }

  #acceptWebSocket(request: IncomingMessage, socket: Socket, head: Buffer, started: number): void {
    const remoteAddress = socket.remoteAddress ?? '';
    const remotePort = socket.remotePort ?? 0;
    this.#webSockets.handleUpgrade(request, socket, head, (webSocket: WebSocket) => {
      this.#recordUpgrade(request, 101, started);
      socket.setNoDelay(true);
      const open = this.#websocketConnections;
      open.add();
      webSocket.once('close', () => open.add(-1));
      const stream = webSocketByteStream(webSocket);
      stream.on('error', () => stream.destroy());
      this.#relay.handle(stream, { remoteAddress, remotePort, websocket: true });
    });
  }

  #recordUpgrade(request: IncomingMessage, status: number, started: number): void {
    if (this.#http !== undefined)
      recordHttpRequest(this.#http.handles, this.#http.classify, request, status, started);
  }
}

function answerProbe(request: IncomingMessage, response: ServerResponse): void {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { 'Content-Type': 'text/plain; charset=utf-8' });
    response.end('bogus probe method\n');
    return;
  }
  response.writeHead(200, { 'Access-Control-Allow-Origin': '*' });
  response.end();
}

function answerNoContent(request: IncomingMessage, response: ServerResponse): void {
  const challenge = request.headers[CHALLENGE_HEADER];
  if (typeof challenge === 'string' && CHALLENGE.test(challenge)) {
    response.setHeader(CHALLENGE_RESPONSE_HEADER, `response ${challenge}`);
  }
  response.writeHead(204);
  response.end();
}
