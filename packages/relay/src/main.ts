#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import {
  ConfigError,
  handleShutdownSignals,
  type Logger,
  runWorkerMain,
  splitHostPort,
  startTelemetry,
} from '@switchyard/telemetry';
import { AllowList } from './admission.ts';
import { readRelayConfig } from './config.ts';
import { startDemoTraffic } from './demo.ts';
import { RELAY_HTTP_ROUTES, RelayHttpServer } from './http-server.ts';
import { loadOrCreateKeyFile } from './key-file.ts';
import { formatPublicKey } from './keys.ts';
import { MeshLink } from './mesh-link.ts';
import { relayCatalog } from './metrics.ts';
import { RelayServer } from './relay-server.ts';

const SERVICE_VERSION = '0.1.0';

function readMeshKey(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(
      'mesh.keyFile',
      `mesh key file ${path} cannot be read: ${(error as Error).message}`,
    );
  }
}

async function main(logger: Logger): Promise<void> {
  const config = readRelayConfig(process.argv.slice(2), process.env);
  const { keys, created } = loadOrCreateKeyFile(config.keyFile);
  const meshKey = config.mesh.keyFile === undefined ? undefined : readMeshKey(config.mesh.keyFile);
  const telemetry = await startTelemetry({
    serviceName: 'switchyard-relay',
    serviceVersion: SERVICE_VERSION,
    catalog: relayCatalog,
    settings: config.telemetry,
    logger,
    httpRoutes: RELAY_HTTP_ROUTES,
  });
  const metrics = telemetry.metrics;
  const allowList =
    config.admission.allowListFile === undefined
      ? undefined
      : new AllowList(config.admission.allowListFile, metrics);
  const relay = new RelayServer({
    metrics,
    keys,
    meshKey,
    admission: allowList,
    sendQueueLength: config.sendQueueLength,
    writeTimeoutMs: config.writeTimeoutMs,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    keepAliveIntervalMs: config.keepAliveIntervalMs,
    pingIntervalMs: config.pingIntervalMs,
  });
  allowList?.watch(config.admission.pollIntervalMs, {
    onReload: (result) => {
      if ('error' in result) {
        logger.error('allow-list reload failed; the previous list stays in force', {
          error: result.error.message,
        });
      } else {
        logger.info('allow-list reloaded', { keys: result.keys });
      }
    },
  });

  const http = new RelayHttpServer(relay, { http: telemetry.http, tls: config.tls });
  const { host, port } = splitHostPort(config.listen);
  const bound = await http.listen(port, host);
  const scheme = config.tls === undefined ? 'http' : 'https';
  const url = `${scheme}://${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}/derp`;
  logger.info('relay listening', {
    url,
    publicKey: formatPublicKey(keys.publicKey),
    keyFile: config.keyFile,
    keyCreated: created,
  });

  const links = config.mesh.peers.map(
    (peer) =>
      new MeshLink({
        name: peer.name,
        url: peer.url,
        meshKey: meshKey!,
        relay,
        metrics,
        logger,
        retryDelayMs: config.mesh.retryDelayMs,
        queueLength: Math.max(config.sendQueueLength, 1024),
        writeTimeoutMs: 30_000,
        handshakeTimeoutMs: config.handshakeTimeoutMs,
      }),
  );
  for (const link of links) link.start();

  const traffic = config.demo.traffic.enabled
    ? await startDemoTraffic({ ...config.demo.traffic, url, logger })
    : undefined;
  handleShutdownSignals({
    worker: {
      stopAccepting: async () => {
        await traffic?.stop();
        http.close();
        for (const link of links) link.close();
        allowList?.close();
        await relay.close();
      },
      drained: async () => {},
      forceClose: () => {},
    },
    telemetry: { admin: telemetry.admin, shutdown: () => telemetry.shutdown() },
    graceMs: config.shutdownGraceMs,
    logger,
  });
  telemetry.admin.setReady(true);
  logger.info('relay serving', {
    metrics: `http://${telemetry.adminAddress.address}:${telemetry.adminAddress.port}/metrics`,
    meshPeers: links.length,
    demoTraffic: traffic !== undefined,
  });
}

runWorkerMain('switchyard-relay', main);
