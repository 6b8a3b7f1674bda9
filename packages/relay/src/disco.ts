import { KEY_LENGTH, NONCE_LENGTH } from './codec.ts';

/** Tailscale's disco message magic, "TS💬" in UTF-8 (disco/disco.go). */
const DISCO_MAGIC = [0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac] as const;
const DISCO_MIN_LENGTH = DISCO_MAGIC.length + KEY_LENGTH + NONCE_LENGTH;

/**
 * Whether a packet looks like a disco (NAT traversal) message: the magic, then the sender's disco
 * key and a nonce. derper uses the same test to count packets by kind and to decide when an
 * undeliverable packet deserves a PeerGone(NotHere) reply.
 */
export function looksLikeDisco(packet: Uint8Array): boolean {
  return (
    packet.length >= DISCO_MIN_LENGTH &&
    packet[0] === DISCO_MAGIC[0] &&
    packet[1] === DISCO_MAGIC[1] &&
    packet[2] === DISCO_MAGIC[2] &&
    packet[3] === DISCO_MAGIC[3] &&
    packet[4] === DISCO_MAGIC[4] &&
    packet[5] === DISCO_MAGIC[5]
  );
}

/** A disco-shaped packet of `length` bytes (at least the minimum), for tests and load generators. */
export function discoPacket(length = DISCO_MIN_LENGTH): Uint8Array {
  const packet = new Uint8Array(Math.max(length, DISCO_MIN_LENGTH));
  packet.set(DISCO_MAGIC, 0);
  return packet;
}
