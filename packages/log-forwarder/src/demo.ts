import { Server, ServerCredentials } from '@grpc/grpc-js';
import { loadOtlpLogsService } from '@switchyard/otlp-proto';
import type { Logger } from '@switchyard/telemetry';
import { LogBatchBuilder } from './log-batch.ts';
import { LogSender } from './sender.ts';

/**
 * The built-in demo: a local OTLP logs sink standing in for the Collector (it accepts and discards),
 * and synthetic senders writing batches into the forwarder's socket, so that `npm start` moves
 * every log-forwarder metric.
 */
export async function startDemoCollector(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const server = new Server();
  server.addService(loadOtlpLogsService(), {
    Export: (_call: unknown, callback: (error: null, response: object) => void) => callback(null, {}),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

export interface DemoTrafficOptions {
  readonly socketPath: string;
  readonly batchesPerSecond: number;
  readonly recordsPerBatch: number;
  readonly logger: Logger;
}

const LEVELS = ['INFO', 'INFO', 'INFO', 'WARN', 'ERROR', 'DEBUG'] as const;
const SEVERITY = { DEBUG: 5, INFO: 9, WARN: 13, ERROR: 17 } as const;

export function startDemoTraffic(options: DemoTrafficOptions): { stop(): Promise<void> } {
  const sender = new LogSender({ socketPath: options.socketPath });
  const builder = new LogBatchBuilder({
    serviceName: 'switchyard-demo-app',
    maxRecords: options.recordsPerBatch,
  });
  let sequence = 0;
  const timer = setInterval(
    () => {
      for (let i = 0; i < options.recordsPerBatch; i++) {
        const level = LEVELS[sequence % LEVELS.length] as keyof typeof SEVERITY;
        builder.add({
          body: `${level} demo request ${sequence} served in ${(sequence * 7) % 250} ms`,
          severityText: level,
          severityNumber: SEVERITY[level],
        });
        sequence += 1;
      }
      const records = builder.records;
      sender.send(builder.finish(), records);
    },
    Math.max(1, Math.round(1000 / options.batchesPerSecond)),
  );
  return {
    stop: async () => {
      clearInterval(timer);
      await sender.close();
    },
  };
}
