import type { MetadataValue } from '@grpc/grpc-js';
import { type OtlpAnswer, successAnswer } from './answer.ts';

/** One Export call as the receiver saw it. */
export interface ReceivedExport<Request> {
  /** The decoded request (see messages.ts for its exact shape). */
  readonly request: Request;
  /**
   * The request metadata (gRPC headers such as `user-agent` or custom ones), keys lower-cased.
   * `-bin` keys hold Buffers. grpc-js has already removed the transport headers `grpc-timeout`,
   * `grpc-encoding`, `grpc-accept-encoding`, `content-type` and `te`.
   */
  readonly metadata: Readonly<Record<string, readonly MetadataValue[]>>;
  /**
   * The compression the client declared in `grpc-encoding`: `'identity'` when uncompressed,
   * `'gzip'` or `'deflate'` otherwise; `undefined` if grpc-js did not expose it.
   */
  readonly requestEncoding: string | undefined;
  /** How the receiver answered this call. */
  readonly answer: OtlpAnswer;
}

interface Waiter<Request> {
  resolve(received: ReceivedExport<Request>): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

interface ScriptedAnswer {
  readonly answer: OtlpAnswer;
  remaining: number;
}

/**
 * The exports of one signal: every call received, a read cursor for `next()`, the callers
 * waiting on it, and the answers scripted for the calls to come.
 */
export class ExportInbox<Request> {
  readonly received: ReceivedExport<Request>[] = [];
  #returned = 0;
  #waiters: Waiter<Request>[] = [];
  #script: ScriptedAnswer[] = [];
  #closedBy: Error | undefined;

  /** Answers the next `times` calls with `answer`, after any answers scripted earlier. */
  script(answer: OtlpAnswer, times: number): void {
    this.#script.push({ answer, remaining: times });
  }

  /** The answer for the call being handled now: the oldest scripted one, else success. */
  takeAnswer(): OtlpAnswer {
    const head = this.#script[0];
    if (head === undefined) return successAnswer;
    head.remaining -= 1;
    if (head.remaining === 0) this.#script.shift();
    return head.answer;
  }

  add(received: ReceivedExport<Request>): void {
    this.received.push(received);
    const waiter = this.#waiters.shift();
    if (waiter === undefined) return;
    clearTimeout(waiter.timer);
    waiter.resolve(this.#takeUnreturned());
  }

  /**
   * The oldest export not yet returned by `next()`, waiting up to `timeoutMs` for one to arrive.
   * Returning unread exports first means an export that lands before the wait starts is not lost.
   */
  next(timeoutMs: number, timeoutError: () => Error): Promise<ReceivedExport<Request>> {
    if (this.#returned < this.received.length) return Promise.resolve(this.#takeUnreturned());
    if (this.#closedBy !== undefined) return Promise.reject(this.#closedBy);
    return new Promise((resolve, reject) => {
      const waiter: Waiter<Request> = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((pending) => pending !== waiter);
          reject(timeoutError());
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** Rejects every pending and future wait that finds no unread export. */
  close(error: Error): void {
    this.#closedBy = error;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#waiters = [];
  }

  #takeUnreturned(): ReceivedExport<Request> {
    const received = this.received[this.#returned]!;
    this.#returned += 1;
    return received;
  }
}
