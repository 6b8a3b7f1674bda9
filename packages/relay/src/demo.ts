import type { Logger } from '@switchyard/telemetry';
import { DerpClient } from './derp-client.ts';
import { discoPacket } from './disco.ts';
import { generateNodeKeyPair } from './keys.ts';

export interface DemoTrafficOptions {
  /** The relay's DERP URL, e.g. http://127.0.0.1:7403/derp. */
  readonly url: string;
  readonly clients: number;
  readonly packetsPerSecond: number;
  readonly packetBytes: number;
  readonly logger: Logger;
}

/** One in this many demo packets is a disco packet to a key nobody holds: drops show on the dashboards. */
const UNKNOWN_DESTINATION_EVERY = 50;

/**
 * Synthetic clients for the built-in demo: they log in over `Upgrade: DERP`, half of them say the
 * relay is their home, and each tick every client sends one packet to the next in the ring (now and
 * then one to an unknown key). Received packets are read and discarded.
 */
export async function startDemoTraffic(options: DemoTrafficOptions): Promise<{ stop(): Promise<void> }> {
  const clients = await Promise.all(
    Array.from({ length: options.clients }, () =>
      DerpClient.connect({ url: options.url, keys: generateNodeKeyPair() }),
    ),
  );
  for (const client of clients) {
    void (async () => {
      for await (const _ of client) {
        // Received packets are the relay's output; the demo only keeps the clients reading.
      }
    })();
  }
  const payload = new Uint8Array(options.packetBytes).fill(0x5a);
  const stray = discoPacket(Math.max(options.packetBytes, 62));
  const nowhere = generateNodeKeyPair().publicKey;
  const intervalMs = Math.max(1, Math.round((1000 * options.clients) / options.packetsPerSecond));
  let tick = 0;
  const timer = setInterval(() => {
    tick++;
    clients.forEach((client, index) => {
      if ((tick * clients.length + index) % UNKNOWN_DESTINATION_EVERY === 0) client.send(nowhere, stray);
      else client.send(clients[(index + 1) % clients.length]!.publicKey, payload);
    });
  }, intervalMs);
  options.logger.info('relay demo traffic started', {
    clients: clients.length,
    packetsPerSecond: options.packetsPerSecond,
  });
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(clients.map((client) => client.close()));
    },
  };
}
