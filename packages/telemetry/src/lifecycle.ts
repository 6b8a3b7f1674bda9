import { SwitchyardError } from './errors.ts';
import { createLogger, type Logger } from './logger.ts';

/** What a worker does at shutdown, in order: stop taking new work, then finish what it has. */
export interface Drainable {
  /** Stop accepting connections or messages; in-flight work continues. */
  stopAccepting(): void | Promise<void>;
  /** Resolves once in-flight work has finished. */
  drained(): Promise<void>;
  /** The grace period is over: cut whatever is left (counted as the worker sees fit). */
  forceClose(): void;
}

export interface ShutdownOptions {
  readonly worker: Drainable;
  /** Flips readiness, flushes the last OTLP export, shuts the provider and admin server down. */
  readonly telemetry: { readonly admin: { markStopping(): void }; shutdown(): Promise<void> };
  readonly graceMs: number;
  readonly logger: Logger;
  readonly signals?: readonly NodeJS.Signals[];
  /** Called with the exit code at the end; `process.exit` by default. */
  readonly exit?: (code: number) => void;
}

/**
 * Installs SIGTERM/SIGINT handlers running graceful shutdown: readiness turns 503, the worker stops
 * accepting, in-flight work gets `graceMs` to finish, the OTLP reader is flushed, the provider shut
 * down, and the process exits 0. A second signal during shutdown exits at once with 130.
 * Returns `shutdown` so that tests and the demo can trigger the same sequence.
 */
export function handleShutdownSignals(options: ShutdownOptions): { shutdown(reason: string): Promise<void> } {
  const { worker, telemetry, graceMs, logger } = options;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let running: Promise<void> | undefined;

  const shutdown = (reason: string): Promise<void> => {
    running ??= (async () => {
      const started = performance.now();
      logger.info('shutting down', { reason, graceMs });
      telemetry.admin.markStopping();
      await worker.stopAccepting();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), graceMs);
      });
      const outcome = await Promise.race([worker.drained().then(() => 'drained' as const), deadline]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        logger.warn('grace period over; closing what is still open', { graceMs });
        worker.forceClose();
      }
      await telemetry.shutdown();
      logger.info('shutdown complete', { outcome, ms: Math.round(performance.now() - started) });
      exit(0);
    })();
    return running;
  };

  for (const signal of options.signals ?? ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      if (running !== undefined) {
        logger.warn('second signal during shutdown; exiting now', { signal });
        exit(130);
        return;
      }
      void shutdown(signal);
    });
  }
  return { shutdown };
}

/**
 * Runs a worker's `main` with a JSON logger named `name`. A `SwitchyardError` (bad config, bad
 * OTEL_* variable, an address in use) ends the process with one log line and exit code 2; any
 * other error with exit code 1 and its stack in the log.
 */
export function runWorkerMain(name: string, main: (logger: Logger) => Promise<void>): void {
  const logger = createLogger({ name, env: process.env });
  main(logger).catch((error: unknown) => {
    if (error instanceof SwitchyardError) {
      logger.error(error.message, { code: error.code });
      process.exit(2);
    }
    logger.error(`${name} failed`, { error });
    process.exit(1);
  });
}
