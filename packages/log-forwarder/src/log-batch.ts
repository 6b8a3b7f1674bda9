/**
 * Builds serialized `opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest` bytes directly
 * in the protobuf wire format, for senders that batch many records: one ResourceLogs (resource
 * attribute `service.name`) holding one ScopeLogs (scope `switchyard-log`) holding the records.
 *
 * Field numbers (opentelemetry-proto, logs/v1/logs.proto, common/v1/common.proto,
 * resource/v1/resource.proto, collector/logs/v1/logs_service.proto):
 * ExportLogsServiceRequest.resource_logs = 1; ResourceLogs.resource = 1, scope_logs = 2;
 * Resource.attributes = 1; ScopeLogs.scope = 1, log_records = 2; InstrumentationScope.name = 1;
 * LogRecord.time_unix_nano = 1 (fixed64), severity_number = 2 (enum), severity_text = 3,
 * body = 5, attributes = 6, observed_time_unix_nano = 11 (fixed64);
 * KeyValue.key = 1, value = 2; AnyValue.string_value = 1.
 */

/** The instrumentation scope name of every batch built here. */
export const LOG_BATCH_SCOPE_NAME = 'switchyard-log';
export const DEFAULT_BATCH_MAX_RECORDS = 100;
/** Default cap on a serialized batch, in bytes (512 KiB). */
export const DEFAULT_BATCH_MAX_BYTES = 512 * 1024;
/** `SeverityNumber` runs from UNSPECIFIED (0) to FATAL4 (24). */
export const MAX_SEVERITY_NUMBER = 24;

const MAX_UINT64 = 0xffff_ffff_ffff_ffffn;
const NANOS_PER_MILLI = 1_000_000n;

/** Wire-format tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited). */
const TAG_REQUEST_RESOURCE_LOGS = 0x0a;
const TAG_RESOURCE_LOGS_RESOURCE = 0x0a;
const TAG_RESOURCE_LOGS_SCOPE_LOGS = 0x12;
const TAG_RESOURCE_ATTRIBUTES = 0x0a;
const TAG_SCOPE_LOGS_SCOPE = 0x0a;
const TAG_SCOPE_LOGS_LOG_RECORDS = 0x12;
const TAG_SCOPE_NAME = 0x0a;
const TAG_RECORD_TIME = 0x09;
const TAG_RECORD_SEVERITY_NUMBER = 0x10;
const TAG_RECORD_SEVERITY_TEXT = 0x1a;
const TAG_RECORD_BODY = 0x2a;
const TAG_RECORD_ATTRIBUTES = 0x32;
/** Field 11, wire type 1: still one byte, as 11 << 3 | 1 = 89 < 128. */
const TAG_RECORD_OBSERVED_TIME = 0x59;
const TAG_KEY_VALUE_KEY = 0x0a;
const TAG_KEY_VALUE_VALUE = 0x12;
const TAG_ANY_VALUE_STRING = 0x0a;

/** Tag byte plus 8 bytes. */
const FIXED64_FIELD_BYTES = 9;
const MAX_VARINT_BYTES = 5;
/** Every length stays below 2^28, so that each varint here is at most 4 bytes from a 32-bit int. */
const MAX_LENGTH_BYTES = 0x0fff_ffff;
const INITIAL_CAPACITY_BYTES = 64 * 1024;

export interface LogRecordInput {
  /** Stored as `AnyValue{string_value}`. */
  readonly body: string;
  /** When the event happened, in ns since the Unix epoch; omitted (0, "unknown") when absent. */
  readonly timeUnixNano?: bigint;
  /** An OTel `SeverityNumber`, 0 (unspecified) to 24 (FATAL4). */
  readonly severityNumber?: number;
  readonly severityText?: string;
  readonly attributes?: Readonly<Record<string, string>>;
}

export interface LogBatchBuilderOptions {
  /** The resource attribute `service.name` of every batch. */
  readonly serviceName: string;
  /** Records per batch; default 100. */
  readonly maxRecords?: number;
  /** Serialized batch size in bytes; default 512 KiB. A single record larger than this still fills an empty batch on its own. */
  readonly maxBytes?: number;
}

function varintBytes(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  return 5;
}

/** Writes a non-negative integer below 2^32 as a varint; returns the offset after it. */
function writeVarint(buffer: Uint8Array, offset: number, value: number): number {
  let rest = value;
  while (rest >= 0x80) {
    buffer[offset++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  buffer[offset++] = rest;
  return offset;
}

/** Bytes of a length-delimited field whose content is `contentBytes` long: tag, length, content. */
function delimitedBytes(contentBytes: number): number {
  return 1 + varintBytes(contentBytes) + contentBytes;
}

function checkPositiveInteger(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`LogBatchBuilder: ${name} must be an integer from 1 to ${max}, got ${value}`);
  }
}

/** Tag, then the content with its length prefix; for the constant parts of the request. */
function delimitedField(tag: number, content: Buffer): Buffer {
  const field = Buffer.allocUnsafe(delimitedBytes(content.length));
  field[0] = tag;
  content.copy(field, writeVarint(field, 1, content.length));
  return field;
}

/** The Resource message: attributes = [KeyValue{key: "service.name", value: {string_value}}]. */
function encodeResource(serviceName: string): Buffer {
  const value = delimitedField(TAG_ANY_VALUE_STRING, Buffer.from(serviceName));
  const keyValue = Buffer.concat([
    delimitedField(TAG_KEY_VALUE_KEY, Buffer.from('service.name')),
    delimitedField(TAG_KEY_VALUE_VALUE, value),
  ]);
  return delimitedField(TAG_RESOURCE_ATTRIBUTES, keyValue);
}

/** The InstrumentationScope message: name = "switchyard-log". */
function encodeScope(): Buffer {
  return delimitedField(TAG_SCOPE_NAME, Buffer.from(LOG_BATCH_SCOPE_NAME));
}

/**
 * Accumulates log records as encoded `log_records` fields and wraps them into a request on
 * `finish()`. Strings are encoded in one pass straight into the buffer: each length prefix is sized
 * for the UTF-16 length (a lower bound of the UTF-8 length) and the bytes after it are moved only in
 * the rare case the real length needs a longer varint. `bytes` is exact at every moment, and the
 * only copy is the final one into the returned Buffer.
 */
export class LogBatchBuilder {
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  /** `resource` field of ResourceLogs, tag and length included. */
  readonly #resourceField: Buffer;
  /** `scope` field of ScopeLogs, tag and length included. */
  readonly #scopeField: Buffer;
  /** Encoded `log_records` fields (tag, length, LogRecord) of the records added since the last finish. */
  #recordFields: Buffer = Buffer.allocUnsafe(INITIAL_CAPACITY_BYTES);
  #recordFieldsBytes = 0;
  #records = 0;
  #observedMs = -1;
  /** `observed_time_unix_nano` of `#observedMs`, as the low and high 32 bits of the fixed64. */
  #observedLow = 0;
  #observedHigh = 0;

  constructor(options: LogBatchBuilderOptions) {
    if (typeof options.serviceName !== 'string' || options.serviceName === '') {
      throw new TypeError(
        `LogBatchBuilder: serviceName must be a non-empty string, got ${options.serviceName}`,
      );
    }
    this.#maxRecords = options.maxRecords ?? DEFAULT_BATCH_MAX_RECORDS;
    this.#maxBytes = options.maxBytes ?? DEFAULT_BATCH_MAX_BYTES;
    checkPositiveInteger('maxRecords', this.#maxRecords, 0x7fff_ffff);
    // Lengths stay below 2^28 so that every varint here fits the 32-bit fast path.
    checkPositiveInteger('maxBytes', this.#maxBytes, MAX_LENGTH_BYTES);
    this.#resourceField = delimitedField(TAG_RESOURCE_LOGS_RESOURCE, encodeResource(options.serviceName));
    this.#scopeField = delimitedField(TAG_SCOPE_LOGS_SCOPE, encodeScope());
  }

  /** Records added since the last `finish()`. */
  get records(): number {
    return this.#records;
  }

  /** The exact size in bytes of what `finish()` would return now. */
  get bytes(): number {
    return this.#requestBytes(this.#recordFieldsBytes);
  }

  /**
   * Adds one record, stamped with the current time as `observed_time_unix_nano`. Returns false,
   * adding nothing, when the batch holds `maxRecords` records or the record would take it past
   * `maxBytes`; an empty batch accepts any one record, so add-finish-add always makes progress.
   * Throws a RangeError for a `timeUnixNano` or `severityNumber` out of range.
   */
  add(record: LogRecordInput): boolean {
    if (this.#records >= this.#maxRecords) return false;
    checkRecord(record);
    const keys = record.attributes === undefined ? NO_KEYS : Object.keys(record.attributes);
    const maxEnd = this.#recordFieldsBytes + maxRecordFieldBytes(record, keys);
    if (maxEnd > this.#recordFields.length) this.#grow(maxEnd);
    const end = this.#writeRecord(record, keys);
    if (this.#records > 0 && this.#requestBytes(end) > this.#maxBytes) return false;
    if (end > MAX_LENGTH_BYTES) {
      throw new RangeError(`log record: a record of ${end} bytes is over the limit of ${MAX_LENGTH_BYTES}`);
    }
    this.#recordFieldsBytes = end;
    this.#records++;
    return true;
  }

  /** The serialized request holding every record added since the last call; the builder is then empty. */
  finish(): Buffer {
    const recordFieldsBytes = this.#recordFieldsBytes;
    const scopeLogsBytes = this.#scopeField.length + recordFieldsBytes;
    const resourceLogsBytes = this.#resourceField.length + delimitedBytes(scopeLogsBytes);
    const request = Buffer.allocUnsafe(delimitedBytes(resourceLogsBytes));
    let offset = 0;
    request[offset++] = TAG_REQUEST_RESOURCE_LOGS;
    offset = writeVarint(request, offset, resourceLogsBytes);
    offset += this.#resourceField.copy(request, offset);
    request[offset++] = TAG_RESOURCE_LOGS_SCOPE_LOGS;
    offset = writeVarint(request, offset, scopeLogsBytes);
    offset += this.#scopeField.copy(request, offset);
    this.#recordFields.copy(request, offset, 0, recordFieldsBytes);
    this.#recordFieldsBytes = 0;
    this.#records = 0;
    return request;
  }

  #requestBytes(recordFieldsBytes: number): number {
    const scopeLogsBytes = this.#scopeField.length + recordFieldsBytes;
    return delimitedBytes(this.#resourceField.length + delimitedBytes(scopeLogsBytes));
  }

  #grow(needed: number): void {
    let capacity = this.#recordFields.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = Buffer.allocUnsafe(capacity);
    this.#recordFields.copy(grown, 0, 0, this.#recordFieldsBytes);
    this.#recordFields = grown;
  }

  /** Writes one `log_records` field after the committed ones; returns its end offset. */
  #writeRecord(record: LogRecordInput, keys: readonly string[]): number {
    const out = this.#recordFields;
    let offset = this.#recordFieldsBytes;
    out[offset++] = TAG_SCOPE_LOGS_LOG_RECORDS;
    const lengthAt = offset;
    const reserved = varintBytes(minRecordBytes(record, keys));
    offset += reserved;
    const { timeUnixNano, severityNumber, severityText, attributes } = record;
    if (timeUnixNano !== undefined) {
      out[offset++] = TAG_RECORD_TIME;
      offset = out.writeBigUInt64LE(timeUnixNano, offset);
    }
    if (severityNumber !== undefined && severityNumber !== 0) {
      out[offset++] = TAG_RECORD_SEVERITY_NUMBER;
      out[offset++] = severityNumber;
    }
    if (severityText !== undefined && severityText !== '') {
      out[offset++] = TAG_RECORD_SEVERITY_TEXT;
      offset = writeString(out, offset, severityText);
    }
    out[offset++] = TAG_RECORD_BODY;
    offset = writeStringAnyValue(out, offset, record.body);
    for (const key of keys) {
      out[offset++] = TAG_RECORD_ATTRIBUTES;
      offset = writeStringKeyValue(out, offset, key, attributes![key]!);
    }
    out[offset++] = TAG_RECORD_OBSERVED_TIME;
    offset = this.#writeObservedNow(out, offset);
    return closeDelimited(out, lengthAt, reserved, offset);
  }

  /** The current time as a fixed64 in ns; the BigInt conversion runs once per wall-clock millisecond. */
  #writeObservedNow(out: Buffer, offset: number): number {
    const nowMs = Date.now();
    if (nowMs !== this.#observedMs) {
      const nowNs = BigInt(nowMs) * NANOS_PER_MILLI;
      this.#observedMs = nowMs;
      this.#observedLow = Number(nowNs & 0xffff_ffffn);
      this.#observedHigh = Number(nowNs >> 32n);
    }
    out.writeUInt32LE(this.#observedLow, offset);
    return out.writeUInt32LE(this.#observedHigh, offset + 4);
  }
}

const NO_KEYS: readonly string[] = [];

function checkRecord(record: LogRecordInput): void {
  const { timeUnixNano, severityNumber } = record;
  if (
    timeUnixNano !== undefined &&
    !(typeof timeUnixNano === 'bigint' && timeUnixNano >= 0n && timeUnixNano <= MAX_UINT64)
  ) {
    throw new RangeError(`log record: timeUnixNano must be a bigint from 0 to 2^64-1, got ${timeUnixNano}`);
  }
  if (
    severityNumber !== undefined &&
    !(Number.isInteger(severityNumber) && severityNumber >= 0 && severityNumber <= MAX_SEVERITY_NUMBER)
  ) {
    throw new RangeError(
      `log record: severityNumber must be an integer from 0 to ${MAX_SEVERITY_NUMBER}, got ${severityNumber}`,
    );
  }
}

/** The LogRecord size if every string were ASCII: a lower bound, and exact in the common case. */
function minRecordBytes(record: LogRecordInput, keys: readonly string[]): number {
  let bytes = FIXED64_FIELD_BYTES + delimitedBytes(delimitedBytes(record.body.length));
  if (record.timeUnixNano !== undefined) bytes += FIXED64_FIELD_BYTES;
  if (record.severityNumber !== undefined && record.severityNumber !== 0) bytes += 2;
  if (record.severityText !== undefined && record.severityText !== '') {
    bytes += delimitedBytes(record.severityText.length);
  }
  for (const key of keys) {
    const valueChars = record.attributes![key]!.length;
    bytes += delimitedBytes(delimitedBytes(key.length) + delimitedBytes(delimitedBytes(valueChars)));
  }
  return bytes;
}

/**
 * An upper bound of the `log_records` field size: 3 UTF-8 bytes per UTF-16 code unit at most, and
 * room for the longest varint at every length prefix.
 */
function maxRecordFieldBytes(record: LogRecordInput, keys: readonly string[]): number {
  let chars = record.body.length + (record.severityText?.length ?? 0);
  for (const key of keys) chars += key.length + record.attributes![key]!.length;
  const prefixes = 4 + keys.length * 4;
  return 3 * chars + prefixes * (1 + MAX_VARINT_BYTES) + 3 * FIXED64_FIELD_BYTES;
}

/**
 * Ends a length-delimited value written at `lengthAt + reserved` up to `end`, after `reserved`
 * bytes were set aside for its length: moves the content when the real length needs another varint
 * size, writes the length, and returns the new end.
 */
function closeDelimited(out: Buffer, lengthAt: number, reserved: number, end: number): number {
  const length = end - lengthAt - reserved;
  const needed = varintBytes(length);
  if (needed !== reserved) out.copyWithin(lengthAt + needed, lengthAt + reserved, end);
  writeVarint(out, lengthAt, length);
  return end + needed - reserved;
}

/** Length prefix, then the UTF-8 bytes. */
function writeString(out: Buffer, offset: number, value: string): number {
  const reserved = varintBytes(value.length);
  return closeDelimited(out, offset, reserved, writeUtf8(out, offset + reserved, value));
}

/** Length prefix, then `AnyValue{string_value}`. */
function writeStringAnyValue(out: Buffer, offset: number, value: string): number {
  const reserved = varintBytes(delimitedBytes(value.length));
  let end = offset + reserved;
  out[end++] = TAG_ANY_VALUE_STRING;
  end = writeString(out, end, value);
  return closeDelimited(out, offset, reserved, end);
}

/** Length prefix, then `KeyValue{key, value: AnyValue{string_value}}`. */
function writeStringKeyValue(out: Buffer, offset: number, key: string, value: string): number {
  const reserved = varintBytes(delimitedBytes(key.length) + delimitedBytes(delimitedBytes(value.length)));
  let end = offset + reserved;
  out[end++] = TAG_KEY_VALUE_KEY;
  end = writeString(out, end, key);
  out[end++] = TAG_KEY_VALUE_VALUE;
  end = writeStringAnyValue(out, end, value);
  return closeDelimited(out, offset, reserved, end);
}

/**
 * Node's Buffer#utf8Write: what Buffer#write calls after dispatching on the encoding name, without
 * that dispatch (measured ~25% faster per call); not in @types/node. Invalid UTF-16 (a lone
 * surrogate) becomes U+FFFD, as with Buffer.from.
 */
interface Utf8WritableBuffer {
  utf8Write(value: string, offset: number, maxBytes: number): number;
}

/** Strings this short encode faster in a JS loop than through a native call, when they are ASCII. */
const SHORT_STRING_CHARS = 32;

/** Writes the UTF-8 bytes of `value` at `offset`; the caller made room for 3 bytes per code unit. */
function writeUtf8(out: Buffer, offset: number, value: string): number {
  const length = value.length;
  if (length <= SHORT_STRING_CHARS) {
    let i = 0;
    for (; i < length; i++) {
      const code = value.charCodeAt(i);
      if (code >= 0x80) break;
      out[offset + i] = code;
    }
    if (i === length) return offset + length;
  }
  return offset + (out as unknown as Utf8WritableBuffer).utf8Write(value, offset, out.length - offset);
}
