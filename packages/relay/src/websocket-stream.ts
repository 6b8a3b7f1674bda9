import type { Duplex } from 'node:stream';
import { createWebSocketStream, type WebSocket } from 'ws';

/**
 * Largest WebSocket message either end of a DERP stream sends. Tailscale reads WebSocket DERP
 * through its wsconn package, which keeps coder/websocket's default limit of 32 KiB per message
 * and drops the connection on a larger one: derper when it reads from a client, and derphttp's
 * WebSocket client when it reads from a server.
 */
export const MAX_WEBSOCKET_MESSAGE = 32 << 10;

/**
 * DERP over WebSocket as a byte stream: binary messages are concatenated on read (a frame may span
 * messages, and a message may hold several frames), and each write goes out in messages of at most
 * `MAX_WEBSOCKET_MESSAGE` bytes, however much a writer batches into one write.
 */
export function webSocketByteStream(socket: WebSocket): Duplex {
  const stream = createWebSocketStream(socket);
  stream._write = (chunk: Buffer, _encoding, callback) => {
    for (let offset = 0; offset < chunk.length; offset += MAX_WEBSOCKET_MESSAGE) {
      const end = offset + MAX_WEBSOCKET_MESSAGE;
      socket.send(chunk.subarray(offset, end), end >= chunk.length ? callback : undefined);
    }
  };
  return stream;
}
