// Helpers for the OTLP logs client's tests: log batches as senders encode them, and a stand-in for
// a Collector that is down whose refusals the test can count.
import { createServer, type Socket } from 'node:net';
import { type ExportLogsServiceRequest, otlpMessageCodecs } from '@switchyard/otlp-proto';

const requestCodec = otlpMessageCodecs().exportLogsServiceRequest;

/** One ExportLogsServiceRequest from `node`, one log record per body. */
export function logBatch(node: string, bodies: readonly string[]): Buffer {
  return Buffer.from(
    requestCodec.encode({
      resourceLogs: [
        {
          resource: { attributes: [{ key: 'k8s.node.name', value: { stringValue: node } }] },
          scopeLogs: [
            {
              scope: { name: 'switchyard.log-forwarder' },
              logRecords: bodies.map((body, index) => ({
                timeUnixNano: String(1_700_000_000_000_000_000n + BigInt(index)),
                severityNumber: 9,
                body: { stringValue: body },
              })),
            },
          ],
        },
      ],
    }),
  );
}

export function recordBodies(request: ExportLogsServiceRequest): string[] {
  return request.resourceLogs.flatMap((resource) =>
    resource.scopeLogs.flatMap((scope) => scope.logRecords.map((record) => record.body?.stringValue ?? '')),
  );
}

export interface ResettingListener extends AsyncDisposable {
  /** Resolves once `count` connections have been reset in all. */
  resets(count: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A Collector that is down, on `port`: every connection is reset as soon as it is accepted. To a
 * gRPC channel that is a failed connection attempt, as a refused one is, but here each attempt is
 * an event, so a test can act just after the channel failed one and began its reconnect backoff.
 */
export async function resettingListener(port: number): Promise<ResettingListener> {
  let reset = 0;
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const server = createServer((socket: Socket) => {
    socket.resetAndDestroy();
    reset += 1;
    for (const waiter of waiters.filter((w) => w.count <= reset)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const close = (): Promise<void> => new Promise((resolve) => server.close(() => resolve()));
  return {
    resets: (count) => {
      if (reset >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiters.push({ count, resolve });
      return promise;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
