import type { ClientConnection } from './client-connection.ts';
import type { RelayCells } from './metrics.ts';

/** The cells a ClientSet updates: derper's duplicate-key gauges and replacement counter. */
export type DuplicateCells = Pick<
  RelayCells,
  'duplicateClientKeys' | 'duplicateClientConnections' | 'duplicateClientReplacements'
>;

/**
 * The logged-in connections of one key, and derper's default policy for duplicates (last writer
 * is active): usually one connection; while a client reconnects or a key is cloned, several. Every
 * connection stays open; packets go to the one that logged in or sent a frame most recently. When
 * that one leaves and no other has spoken since, `active` is undefined and packets for the key are
 * dropped as duplicate_client. It counts into the duplicate gauges and the replacement counter.
 */
export class ClientSet {
  readonly #cells: DuplicateCells;
  readonly #members: ClientConnection[];
  #active: ClientConnection | undefined;
  /** The member that last sent a frame (derper's sendHistory tail). */
  #lastSender: ClientConnection | undefined;

  constructor(first: ClientConnection, cells: DuplicateCells) {
    this.#cells = cells;
    this.#members = [first];
    this.#active = first;
  }

  get members(): readonly ClientConnection[] {
    return this.#members;
  }

  /** The connection packets go to now, if any. */
  get active(): ClientConnection | undefined {
    return this.#active;
  }

  /** A newer login for the key: it becomes the active connection; the others stay open. */
  add(connection: ClientConnection): void {
    const cells = this.#cells;
    this.#members.push(connection);
    if (this.#members.length === 2) {
      cells.duplicateClientKeys.add();
      cells.duplicateClientConnections.add(2);
      this.#members[0]!.isDuplicate = true;
    } else {
      cells.duplicateClientConnections.add();
    }
    connection.isDuplicate = true;
    cells.duplicateClientReplacements.add();
    this.#active = connection;
  }

  /** A frame arrived from a member while the key is duplicated: its sender becomes active. */
  noteActivity(connection: ClientConnection): void {
    if (this.#lastSender === connection) return;
    this.#lastSender = connection;
    this.#active = connection;
  }

  /** Removes a member; returns false if it was not one. */
  remove(leaving: ClientConnection): boolean {
    const index = this.#members.indexOf(leaving);
    if (index < 0) return false;
    this.#members.splice(index, 1);
    if (this.#members.length === 0) {
      this.#active = undefined;
      return true;
    }
    const cells = this.#cells;
    cells.duplicateClientConnections.add(-1);
    if (this.#lastSender === leaving) this.#lastSender = undefined;
    if (this.#members.length === 1) {
      const remaining = this.#members[0]!;
      cells.duplicateClientKeys.add(-1);
      cells.duplicateClientConnections.add(-1);
      remaining.isDuplicate = false;
      this.#active = remaining;
    } else if (this.#active === leaving) {
      this.#active = this.#lastSender;
    }
    return true;
  }
}
