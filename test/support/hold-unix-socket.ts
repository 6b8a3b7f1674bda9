// Listens on the Unix socket path given as argument and logs one JSON line once it does; the test
// SIGKILLs it to leave a stale socket file behind.
import { createServer } from 'node:net';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: hold-unix-socket.ts <path>');
createServer().listen(path, () => console.log(JSON.stringify({ level: 'info', msg: 'listening' })));
