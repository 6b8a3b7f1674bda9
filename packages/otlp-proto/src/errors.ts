/**
 * Every error this package throws. Each has a stable `code` so that callers switch on codes, never
 * on message text; each message names the offending value and what is allowed.
 */
export class OtlpProtoError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The .proto files under `protoDir` do not define a name that load.ts asks for. */
export class ProtoDefinitionError extends OtlpProtoError {
  readonly typeName: string;

  constructor(typeName: string, expected: 'message' | 'service') {
    super(
      'SWY_ERR_OTLP_PROTO_DEFINITION',
      `otlp-proto: "${typeName}" is not a ${expected} in the loaded .proto files; check the package and message names under packages/otlp-proto/proto`,
    );
    this.typeName = typeName;
  }
}

/** An OtlpReceiver option or scripted answer holds a value that is not allowed. */
export class ReceiverOptionError extends OtlpProtoError {
  readonly option: string;

  constructor(option: string, value: unknown, allowed: string) {
    super('SWY_ERR_OTLP_RECEIVER_OPTION', `OtlpReceiver: ${option} is ${describe(value)}; ${allowed}`);
    this.option = option;
  }
}

/** The receiver's gRPC server could not bind its address. */
export class ReceiverBindError extends OtlpProtoError {
  readonly address: string;

  constructor(address: string, cause: unknown) {
    super(
      'SWY_ERR_OTLP_RECEIVER_BIND',
      `OtlpReceiver: could not listen on ${address}: ${cause instanceof Error ? cause.message : String(cause)}; use a free port or port 0 for an ephemeral one`,
      { cause },
    );
    this.address = address;
  }
}

/** No export arrived for a `nextMetrics()` / `nextLogs()` wait before its timeout. */
export class ReceiverTimeoutError extends OtlpProtoError {
  readonly signal: string;
  readonly timeoutMs: number;

  constructor(signal: string, address: string, timeoutMs: number, receivedCount: number) {
    super(
      'SWY_ERR_OTLP_RECEIVER_TIMEOUT',
      `OtlpReceiver at ${address}: no new ${signal} export within ${timeoutMs} ms (${receivedCount} received in total, all already returned by earlier waits); check the exporter's url and export interval, or pass a longer timeoutMs`,
    );
    this.signal = signal;
    this.timeoutMs = timeoutMs;
  }
}

/** The receiver was closed while a `nextMetrics()` / `nextLogs()` wait was pending. */
export class ReceiverClosedError extends OtlpProtoError {
  constructor(address: string) {
    super(
      'SWY_ERR_OTLP_RECEIVER_CLOSED',
      `OtlpReceiver at ${address} was closed while waiting for an export; await the export before close()`,
    );
  }
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : String(value);
}
