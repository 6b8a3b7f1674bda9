import { once } from 'node:events';
import { connect } from 'node:net';

/** Sends `payload` to an echo server, reads it all back, closes, and resolves once fully closed. */
export async function echoOnce(port: number, payload: Buffer): Promise<Buffer> {
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  const received: Buffer[] = [];
  let length = 0;
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      length += chunk.length;
      if (length >= payload.length) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve());
  });
  socket.write(payload);
  await done;
  return Buffer.concat(received);
}
