#!/usr/bin/env node
import type { Server } from 'node:net';
import {
  handleShutdownSignals,
  type Logger,
  runWorkerMain,
  startTelemetry,
  workerConfigSource,
} from '@switchyard/telemetry';
import { readProxyConfig } from './config.ts';
import { startDemoBackends, startDemoTraffic } from './demo.ts';
import { proxyCatalog } from './metrics.ts';
import { ProxyServer } from './proxy-server.ts';

const SERVICE_VERSION = '0.1.0';

async function main(logger: Logger): Promise<void> {
  const argv = process.argv.slice(2);
  const config = readProxyConfig(argv, process.env);
  const file = workerConfigSource('SWITCHYARD_PROXY_', argv, process.env).file;
  const telemetry = await startTelemetry({
    serviceName: 'switchyard-proxy',
    serviceVersion: SERVICE_VERSION,
    catalog: proxyCatalog,
    settings: config.telemetry,
    logger,
  });
  let backends: Server[] = [];
  if (config.demo.backends) {
    backends = await startDemoBackends(
      config.pools.flatMap((pool) => pool.upstreams.map((upstream) => upstream.address)),
    );
  }
  const proxy = new ProxyServer(config, telemetry.metrics, logger);
  const bound = await proxy.start();
  for (const [name, address] of bound) logger.info('proxy listener ready', { listener: name, ...address });

  const reloads = telemetry.metrics.config_reloads;
  process.on('SIGHUP', () => {
    if (file === undefined) {
      logger.warn('SIGHUP ignored: the proxy runs the built-in demo config, there is no file to reload');
      reloads.cell({ result: 'failure' }).add();
      return;
    }
    Promise.resolve()
      .then(() => proxy.reload(readProxyConfig(argv, process.env)))
      .then(
        (started) => {
          reloads.cell({ result: 'success' }).add();
          for (const [name, address] of started)
            logger.info('proxy listener ready', { listener: name, ...address });
          logger.info('config reloaded', { file });
        },
        (error: unknown) => {
          reloads.cell({ result: 'failure' }).add();
          logger.error('config reload failed; the running config stays in force', {
            file,
            error: error instanceof Error ? error.message : String(error),
          });
        },
      );
  });

  const traffic = config.demo.traffic.enabled
    ? startDemoTraffic({ ...config.demo.traffic, targets: [...bound.values()], logger })
    : undefined;
  handleShutdownSignals({
    worker: {
      stopAccepting: () => {
        traffic?.stop();
        proxy.stopAccepting();
      },
      drained: async () => {
        await proxy.drained();
        proxy.close();
        for (const backend of backends) backend.close();
      },
      forceClose: () => proxy.forceClose(),
    },
    telemetry,
    graceMs: config.shutdownGraceMs,
    logger,
  });
  telemetry.admin.setReady(true);
  logger.info('proxy serving', {
    metrics: `http://${telemetry.adminAddress.address}:${telemetry.adminAddress.port}/metrics`,
    listeners: [...bound.keys()],
    demoTraffic: traffic !== undefined,
  });
}

runWorkerMain('switchyard-proxy', main);
