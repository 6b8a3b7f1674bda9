import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { test } from 'node:test';
import { errorName, loadLibuvTcp, peerAddress, type TcpHandle, takeOverAccept, UV_EOF } from './libuv-tcp.ts';

test("this Node has the libuv TCP bindings the proxy's data path is built on", () => {
  const tcp = loadLibuvTcp();
  const handle = tcp.newSocket();
  for (const method of ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'shutdown', 'connect']) {
    assert.equal(typeof (handle as unknown as Record<string, unknown>)[method], 'function', method);
  }
  handle.close();
  assert.equal(errorName(-111), 'ECONNREFUSED');
  assert.equal(errorName(UV_EOF), 'EOF');
});

test('takeOverAccept hands each accepted connection over as a handle that reads into a given buffer', async () => {
  const tcp = loadLibuvTcp();
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { promise: accepted, resolve: accept } = Promise.withResolvers<TcpHandle>();
  takeOverAccept(server, accept);
  const { port } = server.address() as { port: number };
  const client = connect({ host: '127.0.0.1', port });
  await once(client, 'connect');
  const handle = await accepted;
  assert.equal(peerAddress(handle)?.port, client.localPort);
  const buffer = Buffer.alloc(64);
  const reads: number[] = [];
  const { promise: ended, resolve: end } = Promise.withResolvers<void>();
  handle.onread = () => {
    const result = tcp.readResult();
    reads.push(result);
    if (result === UV_EOF) end();
    return undefined;
  };
  handle.useUserBuffer(buffer);
  assert.equal(handle.readStart(), 0);
  client.end('hello');
  await ended;
  assert.deepEqual(reads, [5, UV_EOF]);
  assert.equal(buffer.subarray(0, 5).toString(), 'hello');
  handle.close();
  server.close();
});
