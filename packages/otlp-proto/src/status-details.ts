import { loadMessageCodec, type OtlpMessageCodec } from './load.ts';

/** The trailer in which gRPC carries a serialized google.rpc.Status. */
export const statusDetailsTrailer = 'grpc-status-details-bin';

const retryInfoTypeUrl = 'type.googleapis.com/google.rpc.RetryInfo';

interface Duration {
  seconds: string;
  nanos: number;
}

interface RetryInfo {
  retryDelay: Duration | null;
}

/** protobufjs's built-in google.protobuf.Any keeps snake_case names whatever the loader options. */
interface AnyMessage {
  type_url: string;
  value: Buffer;
}

interface RpcStatus {
  code: number;
  message: string;
  details: AnyMessage[];
}

let codecs: { status: OtlpMessageCodec<RpcStatus>; retryInfo: OtlpMessageCodec<RetryInfo> } | undefined;

function statusCodecs(): NonNullable<typeof codecs> {
  codecs ??= {
    status: loadMessageCodec<RpcStatus>('google.rpc.Status'),
    retryInfo: loadMessageCodec<RetryInfo>('google.rpc.RetryInfo'),
  };
  return codecs;
}

/**
 * The `grpc-status-details-bin` value for an error answer that asks the client to wait
 * `retryDelayMs` before retrying: the OTLP spec's throttling signal (a google.rpc.RetryInfo inside
 * a google.rpc.Status).
 */
export function encodeRetryStatusDetails(code: number, message: string, retryDelayMs: number): Buffer {
  const { status, retryInfo } = statusCodecs();
  const wholeMs = Math.round(retryDelayMs);
  const retryDelay = { seconds: String(Math.floor(wholeMs / 1000)), nanos: (wholeMs % 1000) * 1_000_000 };
  const details = [{ type_url: retryInfoTypeUrl, value: retryInfo.encode({ retryDelay }) }];
  return Buffer.from(status.encode({ code, message, details }));
}

/**
 * The retry delay, in milliseconds, that a `grpc-status-details-bin` value asks for; `undefined`
 * when it holds no RetryInfo. Throws an Error when the bytes are not a google.rpc.Status.
 */
export function decodeRetryDelayMs(statusDetails: Uint8Array): number | undefined {
  const { status, retryInfo } = statusCodecs();
  const detail = status.decode(statusDetails).details.find((any) => any.type_url === retryInfoTypeUrl);
  if (detail === undefined) return undefined;
  const delay = retryInfo.decode(detail.value).retryDelay;
  if (delay === null) return undefined;
  return Number(delay.seconds) * 1000 + delay.nanos / 1_000_000;
}
