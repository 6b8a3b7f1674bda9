#!/usr/bin/env node
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { LogBatchBuilder, type LogRecordInput } from './log-batch.ts';
import { LogSender, LogSenderFlushTimeoutError, type LogSenderStats } from './sender.ts';

/** The forwarder's default socket (config.ts DEFAULT_SOCKET_PATH, not imported: it loads the whole server config stack). */
export const DEFAULT_CLI_SOCKET_PATH = '/tmp/switchyard/log-forwarder.sock';
/** OpenTelemetry's `service.name` when none is configured. */
const UNKNOWN_SERVICE = 'unknown_service';
const MAX_BATCH_RECORDS = 100_000;
const MAX_DURATION_MS = 3_600_000;

export const USAGE = `usage: switchyard-log send [--socket <path>] [--service <name>] [--batch-records <n>] [--flush-ms <ms>] [--flush-timeout-ms <ms>]

Reads stdin line by line and sends each non-empty line as one log record to the node's log forwarder.
A leading level word (TRACE, DEBUG, INFO, WARN, WARNING, ERROR, FATAL, any case, optionally in [ ])
sets the record's severity. Input is never held up: when the forwarder is slow or away, records are
queued, then dropped and counted. A one-line summary goes to stderr at the end of input.

  --socket <path>           forwarder socket (default $SWITCHYARD_LOG_SOCKET, else ${DEFAULT_CLI_SOCKET_PATH})
  --service <name>          service.name of the records (default $OTEL_SERVICE_NAME, else ${UNKNOWN_SERVICE})
  --batch-records <n>       records per batch, 1 to ${MAX_BATCH_RECORDS} (default 100)
  --flush-ms <ms>           longest a record waits for its batch to fill (default 200)
  --flush-timeout-ms <ms>   at end of input, how long to wait for the forwarder to take the queue (default 5000)

Exit status: 0 when every record was sent or dropped and counted, 1 when records were still queued
after --flush-timeout-ms, 2 for bad arguments.`;

/** The command line does not parse; the message says what is wrong. */
export class CliUsageError extends Error {
  readonly code = 'SWY_ERR_LOG_CLI_USAGE';

  constructor(message: string) {
    super(message);
    this.name = 'CliUsageError';
  }
}

export interface SendCommand {
  readonly socketPath: string;
  readonly serviceName: string;
  readonly batchRecords: number;
  readonly flushMs: number;
  readonly flushTimeoutMs: number;
}

function integerArgument(
  name: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new CliUsageError(`--${name} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return value;
}

/** `{ help: true }` for --help; throws CliUsageError for anything else that is not a valid `send`. */
export function parseCommandLine(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { help: true } | { help: false; command: SendCommand } {
  let parsed: ReturnType<typeof parseSendArgs>;
  try {
    parsed = parseSendArgs(argv);
  } catch (error) {
    throw new CliUsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true };
  if (positionals.length === 0) throw new CliUsageError('missing the command; the only command is "send"');
  if (positionals[0] !== 'send')
    throw new CliUsageError(`unknown command "${positionals[0]}"; the only command is "send"`);
  if (positionals.length > 1) throw new CliUsageError(`unexpected argument "${positionals[1]}"`);
  const socketPath = values.socket ?? (env.SWITCHYARD_LOG_SOCKET || DEFAULT_CLI_SOCKET_PATH);
  if (socketPath === '') throw new CliUsageError('--socket must not be empty');
  const serviceName = values.service ?? (env.OTEL_SERVICE_NAME || UNKNOWN_SERVICE);
  if (serviceName === '') throw new CliUsageError('--service must not be empty');
  return {
    help: false,
    command: {
      socketPath,
      serviceName,
      batchRecords: integerArgument('batch-records', values['batch-records'], 100, 1, MAX_BATCH_RECORDS),
      flushMs: integerArgument('flush-ms', values['flush-ms'], 200, 1, MAX_DURATION_MS),
      flushTimeoutMs: integerArgument(
        'flush-timeout-ms',
        values['flush-timeout-ms'],
        5000,
        0,
        MAX_DURATION_MS,
      ),
    },
  };
}

function parseSendArgs(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      socket: { type: 'string' },
      service: { type: 'string' },
      'batch-records': { type: 'string' },
      'flush-ms': { type: 'string' },
      'flush-timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** OTel SeverityNumber of the first of each level: TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17, FATAL 21. */
const SEVERITY_NUMBERS: Readonly<Record<string, number>> = {
  trace: 1,
  debug: 5,
  info: 9,
  warn: 13,
  warning: 13,
  error: 17,
  fatal: 21,
};
const LEADING_LEVEL = /^\s*\[?(trace|debug|info|warning|warn|error|fatal)\b/i;

/**
 * The severity a line announces with its first word; severity_text keeps the word as written (the
 * data model's "original string representation"). Undefined for a line without a level word.
 */
export function inferSeverity(line: string): { severityNumber: number; severityText: string } | undefined {
  const match = LEADING_LEVEL.exec(line);
  if (match === null) return undefined;
  const word = match[1]!;
  return { severityNumber: SEVERITY_NUMBERS[word.toLowerCase()]!, severityText: word };
}

export function formatSummary(
  stats: LogSenderStats,
  socketPath: string,
  lastError: Error | undefined,
): string {
  const dropped = stats.droppedChannelFull + stats.droppedBatchFull;
  let summary =
    `switchyard-log: sent ${stats.sentRecords} records in ${stats.sentBatches} batches; ` +
    `dropped ${dropped} (channel_full ${stats.droppedChannelFull}, batch_full ${stats.droppedBatchFull}); ` +
    `unsent ${stats.queuedRecords}`;
  if (stats.queuedRecords > 0 && !stats.connected) {
    const reason =
      (lastError as NodeJS.ErrnoException | undefined)?.code ?? lastError?.message ?? 'not connected';
    summary += `; log forwarder unreachable at ${socketPath} (${reason})`;
  }
  return summary;
}

/** Reads stdin to the end, sending its lines; resolves with the exit status. */
export async function runSend(command: SendCommand, input: NodeJS.ReadableStream): Promise<number> {
  const sender = new LogSender({ socketPath: command.socketPath });
  const builder = new LogBatchBuilder({ serviceName: command.serviceName, maxRecords: command.batchRecords });
  let flushTimer: NodeJS.Timeout | undefined;
  const sendBatch = () => {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    const records = builder.records;
    if (records > 0) sender.send(builder.finish(), records);
  };
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const endInput = () => lines.close();
  process.once('SIGINT', endInput);
  process.once('SIGTERM', endInput);
  for await (const line of lines) {
    if (line === '') continue;
    const severity = inferSeverity(line);
    const record: LogRecordInput = severity === undefined ? { body: line } : { body: line, ...severity };
    if (!builder.add(record)) {
      sendBatch();
      builder.add(record);
    }
    if (builder.records >= command.batchRecords) sendBatch();
    else flushTimer ??= setTimeout(sendBatch, command.flushMs);
  }
  process.off('SIGINT', endInput);
  process.off('SIGTERM', endInput);
  sendBatch();
  let status = 0;
  try {
    await sender.flush(command.flushTimeoutMs);
  } catch (error) {
    if (!(error instanceof LogSenderFlushTimeoutError)) throw error;
    status = 1;
  }
  process.stderr.write(`${formatSummary(sender.stats, command.socketPath, sender.lastError)}\n`);
  await sender.close();
  return status;
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof CliUsageError)) throw error;
    process.stderr.write(`switchyard-log: ${error.message}\n\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  if (parsed.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  process.exitCode = await runSend(parsed.command, process.stdin);
}

if (import.meta.main) await main();
