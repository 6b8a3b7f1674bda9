#!/usr/bin/env node
import { handleShutdownSignals, type Logger, runWorkerMain, startTelemetry } from '@switchyard/telemetry';
import { BatchBuffer } from './buffer.ts';
import { readLogForwarderConfig } from './config.ts';
import { startDemoCollector, startDemoTraffic } from './demo.ts';
import { Forwarder } from './forwarder.ts';
import { Intake } from './intake.ts';
import { logForwarderCatalog } from './metrics.ts';
import { createLogsClient } from './upstream.ts';

const SERVICE_VERSION = '0.1.0';

async function main(logger: Logger): Promise<void> {
  const config = readLogForwarderConfig(process.argv.slice(2), process.env);
  const telemetry = await startTelemetry({
    serviceName: 'switchyard-log-forwarder',
    serviceVersion: SERVICE_VERSION,
    catalog: logForwarderCatalog,
    settings: config.telemetry,
    logger,
  });
  const metrics = telemetry.metrics;
  const demoCollector = config.demo.collector ? await startDemoCollector() : undefined;
  const client = createLogsClient(config.collector, demoCollector?.endpoint, process.env, metrics, logger);
  const buffer = new BatchBuffer(config.buffer);
  const forwarder = new Forwarder({
    buffer,
    exporter: client,
    metrics,
    logger,
    maxExportBatches: config.collector.maxExportBatches,
    maxExportBytes: config.collector.maxExportBytes,
  });
  const intake = new Intake({
    path: config.socket.path,
    mode: config.socket.mode,
    maxFrameBytes: config.socket.maxFrameBytes,
    buffer,
    metrics,
    logger,
    onBatch: () => forwarder.wake(),
  });
  await intake.start();
  logger.info('log intake listening', { socket: config.socket.path, collector: client.endpoint });

  const traffic = config.demo.traffic.enabled
    ? startDemoTraffic({ ...config.demo.traffic, socketPath: config.socket.path, logger })
    : undefined;
  handleShutdownSignals({
    worker: {
      stopAccepting: async () => {
        await traffic?.stop();
        await intake.stop();
      },
      drained: () => forwarder.idle(),
      forceClose: () => void forwarder.abort(),
    },
    telemetry: {
      admin: telemetry.admin,
      shutdown: async () => {
        // Whatever is still buffered or in flight now is counted as dropped (shutdown).
        await forwarder.abort();
        client.close();
        await demoCollector?.stop();
        await telemetry.shutdown();
      },
    },
    graceMs: config.shutdownGraceMs,
    logger,
  });
  telemetry.admin.setReady(true);
  logger.info('log forwarder serving', {
    metrics: `http://${telemetry.adminAddress.address}:${telemetry.adminAddress.port}/metrics`,
    demoTraffic: traffic !== undefined,
  });
}

runWorkerMain('switchyard-log-forwarder', main);
