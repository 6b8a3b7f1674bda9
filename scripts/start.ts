// `npm start`: every worker as its own process on its built-in default config, with demo traffic
// (SWITCHYARD_DEMO_TRAFFIC=0 turns it off). Ctrl-C / SIGTERM reach every worker, which shuts down
// gracefully; this launcher exits once all have, non-zero if any failed.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const workers = [
  { name: 'proxy', main: '../packages/proxy/src/main.ts', metrics: 'http://127.0.0.1:9401/metrics' },
  {
    name: 'log-forwarder',
    main: '../packages/log-forwarder/src/main.ts',
    metrics: 'http://127.0.0.1:9403/metrics',
  },
  { name: 'relay', main: '../packages/relay/src/main.ts', metrics: 'http://127.0.0.1:9402/metrics' },
];

const children: ChildProcess[] = [];
let failed = false;
for (const worker of workers) {
  // Own process groups: a terminal's Ctrl-C reaches each worker once, through the forwarding below,
  // not twice (a second signal would cut a worker's graceful shutdown short).
  const child = spawn(process.execPath, [fileURLToPath(new URL(worker.main, import.meta.url))], {
    stdio: 'inherit',
    detached: true,
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal === null) failed = true;
    if (code !== 0) console.error(`switchyard: ${worker.name} exited (code ${code}, signal ${signal})`);
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(failed ? 1 : 0);
  });
  children.push(child);
  console.error(`switchyard: started ${worker.name} (pid ${child.pid}), metrics at ${worker.metrics}`);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    for (const child of children) if (child.exitCode === null) child.kill(signal);
  });
}
