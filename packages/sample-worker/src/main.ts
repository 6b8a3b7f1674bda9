#!/usr/bin/env node
import { handleShutdownSignals, type Logger, runWorkerMain, startTelemetry } from '@switchyard/telemetry';
import { readSampleConfig } from './config.ts';
import { EchoServer } from './echo-server.ts';
import { sampleCatalog } from './metrics.ts';
import { TrafficGenerator } from './traffic.ts';

const SERVICE_VERSION = '0.1.0';

async function main(logger: Logger): Promise<void> {
  const config = readSampleConfig(process.argv.slice(2), process.env);
  const telemetry = await startTelemetry({
    serviceName: 'switchyard-sample-worker',
    serviceVersion: SERVICE_VERSION,
    catalog: sampleCatalog,
    settings: config.telemetry,
    logger,
  });
  const [host = '127.0.0.1', port = '0'] = config.echo.listen.split(/:(?=\d+$)/);
  const echo = new EchoServer({
    host,
    port: Number(port),
    idleTimeoutMs: config.echo.idleTimeoutMs,
    maxConnections: config.echo.maxConnections,
    telemetry,
    logger,
  });
  const listening = await echo.listen();
  logger.info('echo listener ready', { host: listening.host, port: listening.port });

  const traffic = config.traffic.enabled
    ? new TrafficGenerator({ ...config.traffic, ...listening, logger })
    : undefined;
  const ready = telemetry.metrics.ready.cell();
  handleShutdownSignals({
    worker: {
      stopAccepting: () => {
        ready.set(0);
        traffic?.stop();
        echo.stopAccepting();
      },
      drained: () => echo.drained(),
      forceClose: () => echo.forceClose(),
    },
    telemetry,
    graceMs: config.shutdownGraceMs,
    logger,
  });
  traffic?.start();
  telemetry.admin.setReady(true);
  ready.set(1);
  logger.info('sample worker serving', {
    metrics: `http://${telemetry.adminAddress.address}:${telemetry.adminAddress.port}/metrics`,
    demoTraffic: traffic !== undefined,
  });
}

runWorkerMain('switchyard-sample-worker', main);
