export type { OtlpAnswer, OtlpSignal } from './answer.ts';
export {
  OtlpProtoError,
  ProtoDefinitionError,
  ReceiverBindError,
  ReceiverClosedError,
  ReceiverOptionError,
  ReceiverTimeoutError,
} from './errors.ts';
export type { ReceivedExport } from './inbox.ts';
export {
  loadOtlpLogsService,
  loadOtlpMetricsService,
  type OtlpLogsServiceDefinition,
  type OtlpMessageCodec,
  type OtlpMessageCodecs,
  type OtlpMetricsServiceDefinition,
  otlpLoaderOptions,
  otlpMessageCodecs,
  protoDir,
} from './load.ts';
export type * from './messages.ts';
export { OtlpReceiver, type OtlpReceiverEvents, type OtlpReceiverOptions } from './receiver.ts';
export { type SelfSignedCertificate, selfSignedCertificate } from './self-signed-certificate.ts';
export { decodeRetryDelayMs, statusDetailsTrailer } from './status-details.ts';
