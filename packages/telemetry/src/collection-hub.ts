import type { MessagePort } from 'node:worker_threads';
import { SwitchyardError } from './errors.ts';
import type { MetricsWriter, WriterMessage, WriterRequest } from './metrics-writer.ts';
import { type SeriesRegistry, WriterView } from './series-registry.ts';

/**
 * The telemetry thread's side of collection: asks every writer thread for a snapshot, learns what
 * each report announces, and merges the snapshots into one array of values.
 *
 * Rounds never overlap: a snapshot half is overwritten only by the writer's next snapshot, which
 * only a new round asks for, and a round merges before it ends. A collection asked for while a
 * round runs waits for the next round (several such callers share it), so that what it returns is
 * never older than the request. New series arrive apart from snapshots and are learned as they
 * come. A writer that does not answer within `timeoutMs` fails the round; it is not asked again
 * until it has answered, and its late snapshot serves the next round.
 */

export class CollectTimeoutError extends SwitchyardError {
  constructor(timeoutMs: number) {
    super(
      'SWY_ERR_COLLECT_TIMEOUT',
      `a data thread did not answer a metrics collection within ${timeoutMs} ms: its event loop is blocked or far behind (see nodejs_eventloop_delay_*); /metrics answers 503 until it catches up`,
    );
  }
}

export interface Collected {
  /** Every series' value, indexed by `RegisteredSeries.offset`. */
  readonly values: Float64Array;
  /** Messages of collect hooks that threw in this round. */
  readonly hookErrors: readonly string[];
}

class RemoteWriter {
  readonly #port: MessagePort;
  readonly #registry: SeriesRegistry;
  #view: WriterView | undefined;
  #nextId = 1;
  /** The unanswered request: a later round waits for the same answer. */
  #inflight:
    | { id: number; answer: Promise<readonly string[]>; resolve: (errors: readonly string[]) => void }
    | undefined;
  #closed = false;

  constructor(port: MessagePort, registry: SeriesRegistry) {
    this.#port = port;
    this.#registry = registry;
    port.on('message', (message: WriterMessage) => this.#receive(message));
    port.on('close', () => {
      this.#closed = true;
      this.#settle([]);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves once the writer's report for this (or its still unanswered) request is applied. */
  request(): Promise<readonly string[]> {
    if (this.#closed) return Promise.resolve([]);
    if (this.#inflight === undefined) {
      const id = this.#nextId++;
      let resolve: (errors: readonly string[]) => void = () => {};
      const answer = new Promise<readonly string[]>((settle) => {
        resolve = settle;
      });
      this.#inflight = { id, answer, resolve };
      this.#port.postMessage({ type: 'collect', id } satisfies WriterRequest);
    }
    return this.#inflight.answer;
  }

  #settle(errors: readonly string[]): void {
    const inflight = this.#inflight;
    this.#inflight = undefined;
    inflight?.resolve(errors);
  }

  #receive(message: WriterMessage): void {
    if (message.type === 'hello') {
      this.#view = new WriterView(message.published);
      return;
    }
    const view = this.#view;
    if (view === undefined) throw new Error(`a writer sent ${message.type} before its hello`);
    if (message.type === 'series') {
      this.#registry.applySeries(view, message.batch);
      return;
    }
    view.accept(message.report.sequence);
    if (this.#inflight?.id === message.id) this.#settle(message.report.hookErrors);
  }

  close(): void {
    this.#port.close();
  }
}

export class CollectionHub {
  readonly registry: SeriesRegistry;
  readonly #local: MetricsWriter;
  readonly #localView: WriterView;
  readonly #remotes: RemoteWriter[] = [];
  readonly #timeoutMs: number;
  #running: Promise<Collected> | undefined;
  #queued: Promise<Collected> | undefined;

  constructor(registry: SeriesRegistry, local: MetricsWriter, timeoutMs: number) {
    this.registry = registry;
    this.#local = local;
    this.#localView = new WriterView(local.published.buffer);
    this.#timeoutMs = timeoutMs;
  }

  /** Adds a writer thread reached through `port` (its end runs `MetricsWriter.serve`). */
  addWriter(port: MessagePort): void {
    this.#remotes.push(new RemoteWriter(port, this.registry));
  }

  /** Snapshots every writer and merges them; see the class comment for overlapping calls. */
  collect(): Promise<Collected> {
    if (this.#running === undefined) {
      this.#running = this.#round().finally(() => {
        this.#running = undefined;
      });
      return this.#running;
    }
    this.#queued ??= this.#running
      .catch(() => undefined)
      .then(() => {
        this.#queued = undefined;
        return this.collect();
      });
    return this.#queued;
  }

  async #round(): Promise<Collected> {
    const live = this.#remotes.filter((remote) => !remote.closed);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new CollectTimeoutError(this.#timeoutMs)), this.#timeoutMs);
    });
    try {
      const answers = await Promise.race([Promise.all(live.map((remote) => remote.request())), timeout]);
      // The local snapshot and the merge run in one go: no report can arrive in between.
      const report = this.registry.snapshotLocal(this.#local, this.#localView);
      return { values: this.registry.merge(), hookErrors: [...answers.flat(), ...report.hookErrors] };
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    for (const remote of this.#remotes) remote.close();
  }
}
