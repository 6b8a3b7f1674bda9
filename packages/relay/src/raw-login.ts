import { connect, type Socket } from 'node:net';
import { FrameType } from './codec.ts';
import { FrameReader } from './frame-reader.ts';
import { parseServerKey, sealClientInfo } from './handshake.ts';
import { generateNodeKeyPair, type NodeKeyPair } from './keys.ts';

/**
 * Logs `keys` in over a bare TCP socket (a relay's plain `listen`) and hands the socket back with
 * no reader attached, so that a test can write frames no well-behaved client sends, or stop
 * reading. Socket errors are swallowed: such tests expect the relay to cut them off.
 */
export async function rawLogin(
  port: number,
  keys: NodeKeyPair = generateNodeKeyPair(),
  host = '127.0.0.1',
): Promise<Socket> {
  const socket = connect({ host, port });
  socket.on('error', () => {});
  const reader = new FrameReader();
  await new Promise<void>((resolve, reject) => {
    const onClose = () => reject(new Error('the relay closed the connection during login'));
    socket.once('close', onClose);
    socket.on('data', function onData(chunk: Buffer) {
      reader.push(chunk, (frameType, payload) => {
        if (frameType === FrameType.ServerKey) {
          const info = { version: 2, meshKey: '', canAckPings: false, isProber: false };
          socket.write(sealClientInfo(keys, parseServerKey(payload), info));
        } else if (frameType === FrameType.ServerInfo) {
          socket.off('data', onData);
          socket.off('close', onClose);
          resolve();
        }
      });
    });
  });
  return socket;
}
