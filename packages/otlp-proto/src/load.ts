import { fileURLToPath } from 'node:url';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { type AnyDefinition, loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';
import { ProtoDefinitionError } from './errors.ts';
import type {
  ExportLogsServiceRequest,
  ExportLogsServiceResponse,
  ExportMetricsServiceRequest,
  ExportMetricsServiceResponse,
  LogsData,
  MetricsData,
  OtlpInput,
} from './messages.ts';

/** Absolute path of the directory that holds the .proto files (the include root for imports). */
export const protoDir: string = fileURLToPath(new URL('../proto/', import.meta.url));

const protoFiles = [
  'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
  'opentelemetry/proto/collector/logs/v1/logs_service.proto',
  'google/rpc/status.proto',
  'google/rpc/error_details.proto',
];

/**
 * How @grpc/proto-loader maps messages to JS objects, for the gRPC services and the message codecs
 * alike, so that a decoded request looks the same whichever way it arrived:
 * - `keepCase: false`: camelCase field names (`timeUnixNano`), as in opentelemetry-js's own OTLP
 *   types, so SDK-side and receiver-side objects read alike in tests;
 * - `longs: String`: 64-bit integers as decimal strings; a JS number would silently round uint64
 *   counts and fixed64 nanosecond timestamps above 2^53;
 * - `enums: String`: enum names (`AGGREGATION_TEMPORALITY_DELTA`), readable in assertion diffs;
 * - `defaults: true`: every field present, so a zero value reads as `0`/`''`/`[]`, not `undefined`;
 * - `oneofs: true`: a virtual field names the set oneof member (`data: 'histogram'`).
 */
export const otlpLoaderOptions: Readonly<Options> = Object.freeze({
  includeDirs: [protoDir],
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

/** `opentelemetry.proto.collector.metrics.v1.MetricsService`, ready for `Server.addService`. */
export type OtlpMetricsServiceDefinition = ServiceDefinition & {
  readonly Export: MethodDefinition<ExportMetricsServiceRequest, ExportMetricsServiceResponse>;
};

/** `opentelemetry.proto.collector.logs.v1.LogsService`, ready for `Server.addService`. */
export type OtlpLogsServiceDefinition = ServiceDefinition & {
  readonly Export: MethodDefinition<ExportLogsServiceRequest, ExportLogsServiceResponse>;
};

/** Encodes and decodes one message type with the options of {@link otlpLoaderOptions}. */
export interface OtlpMessageCodec<T> {
  /** Fully qualified protobuf name, e.g. `opentelemetry.proto.logs.v1.LogsData`. */
  readonly typeName: string;
  encode(message: OtlpInput<T>): Uint8Array;
  /** Throws an Error when the bytes are not a valid encoding of the message. */
  decode(bytes: Uint8Array): T;
}

export interface OtlpMessageCodecs {
  readonly exportMetricsServiceRequest: OtlpMessageCodec<ExportMetricsServiceRequest>;
  readonly exportMetricsServiceResponse: OtlpMessageCodec<ExportMetricsServiceResponse>;
  readonly exportLogsServiceRequest: OtlpMessageCodec<ExportLogsServiceRequest>;
  readonly exportLogsServiceResponse: OtlpMessageCodec<ExportLogsServiceResponse>;
  readonly metricsData: OtlpMessageCodec<MetricsData>;
  readonly logsData: OtlpMessageCodec<LogsData>;
}

let packageDefinition: PackageDefinition | undefined;
let messageCodecs: OtlpMessageCodecs | undefined;

function loadedPackage(): PackageDefinition {
  packageDefinition ??= loadSync(protoFiles, { ...otlpLoaderOptions });
  return packageDefinition;
}

function isService(definition: AnyDefinition): boolean {
  return !('format' in definition);
}

function serviceDefinition(name: string): ServiceDefinition {
  const definition = loadedPackage()[name];
  if (definition === undefined || !isService(definition)) throw new ProtoDefinitionError(name, 'service');
  return definition as ServiceDefinition;
}

/** The metrics collector service definition, to implement `Export` on a grpc-js `Server`. */
export function loadOtlpMetricsService(): OtlpMetricsServiceDefinition {
  return serviceDefinition(
    'opentelemetry.proto.collector.metrics.v1.MetricsService',
  ) as OtlpMetricsServiceDefinition;
}

/** The logs collector service definition, to implement `Export` on a grpc-js `Server`. */
export function loadOtlpLogsService(): OtlpLogsServiceDefinition {
  return serviceDefinition('opentelemetry.proto.collector.logs.v1.LogsService') as OtlpLogsServiceDefinition;
}

/**
 * A codec for any message in the loaded files. proto-loader already builds a serializer and a
 * deserializer per message, with the same options as the services, so this wraps those rather
 * than reaching for protobufjs (not a declared dependency of this package).
 */
export function loadMessageCodec<T>(typeName: string): OtlpMessageCodec<T> {
  const definition = loadedPackage()[typeName];
  if (definition?.format !== 'Protocol Buffer 3 DescriptorProto') {
    throw new ProtoDefinitionError(typeName, 'message');
  }
  const { serialize, deserialize } = definition;
  return Object.freeze({
    typeName,
    encode: (message: OtlpInput<T>): Uint8Array => serialize(message as object),
    decode: (bytes: Uint8Array): T =>
      deserialize(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as T,
  });
}

/** Codecs for the OTLP requests, responses and `*Data` messages this package defines. */
export function otlpMessageCodecs(): OtlpMessageCodecs {
  messageCodecs ??= Object.freeze({
    exportMetricsServiceRequest: loadMessageCodec<ExportMetricsServiceRequest>(
      'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest',
    ),
    exportMetricsServiceResponse: loadMessageCodec<ExportMetricsServiceResponse>(
      'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse',
    ),
    exportLogsServiceRequest: loadMessageCodec<ExportLogsServiceRequest>(
      'opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest',
    ),
    exportLogsServiceResponse: loadMessageCodec<ExportLogsServiceResponse>(
      'opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse',
    ),
    metricsData: loadMessageCodec<MetricsData>('opentelemetry.proto.metrics.v1.MetricsData'),
    logsData: loadMessageCodec<LogsData>('opentelemetry.proto.logs.v1.LogsData'),
  });
  return messageCodecs;
}
