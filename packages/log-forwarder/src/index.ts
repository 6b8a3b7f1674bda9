export { BatchBuffer } from './buffer.ts';
export {
  DEFAULT_SOCKET_PATH,
  type LogForwarderConfig,
  logForwarderConfigSchema,
  readLogForwarderConfig,
} from './config.ts';
export {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  encodeFrameHeader,
  FRAME_TAG_BATCH,
  FRAME_TAG_ENVELOPE,
  type Frame,
  FrameDecoder,
  type FrameError,
} from './frame.ts';
export { SocketInUseError } from './intake.ts';
export { LogBatchBuilder } from './log-batch.ts';
export { logForwarderCatalog } from './metrics.ts';
export { countLogRecords, decodeEnvelope, PayloadDecodeError } from './otlp-wire.ts';
export { LogSender, type LogSenderOptions } from './sender.ts';
