/**
 * Protobuf wire-format walking for the forwarder's payloads, without decoding into objects: the
 * forwarder passes the request bytes on as they are (serialized messages of one type concatenate into
 * their merge, so several batches concatenate into one export), and needs from them only their
 * validity and their number of log records.
 *
 * Field numbers are opentelemetry-proto's (collector/logs/v1/logs_service.proto, logs/v1/logs.proto)
 * and proto/switchyard/log_forwarder/v1/envelope.proto's.
 */

export class PayloadDecodeError extends Error {
  readonly code = 'SWY_ERR_LOG_PAYLOAD';
  /** Byte offset in the payload where the problem was found. */
  readonly offset: number;

  constructor(problem: string, offset: number) {
    super(`malformed protobuf payload: ${problem} at byte ${offset}`);
    this.name = 'PayloadDecodeError';
    this.offset = offset;
  }
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_I32 = 5;
const WIRE_TYPE_NAMES = [
  'varint',
  'i64',
  'length-delimited',
  'start-group',
  'end-group',
  'i32',
  'invalid',
  'invalid',
];
/** In a shape's wire-type table: a field number the shape does not know, any valid wire type goes. */
const UNKNOWN_FIELD = 0xff;
const MAX_FIELD_NUMBER = 0x1fffffff;

/** The known fields of one message type: their expected wire type, and the shape of walked message fields. */
interface MessageShape {
  readonly name: string;
  readonly wireTypes: Uint8Array;
  readonly fieldNames: string[];
  readonly children: (MessageShape | undefined)[];
}

function shape(name: string, fields: Record<number, [fieldName: string, wireType: number]>): MessageShape {
  const numbers = Object.keys(fields).map(Number);
  const wireTypes = new Uint8Array(Math.max(...numbers) + 1).fill(UNKNOWN_FIELD);
  const fieldNames: string[] = [];
  for (const number of numbers) {
    const [fieldName, wireType] = fields[number]!;
    wireTypes[number] = wireType;
    fieldNames[number] = fieldName;
  }
  return { name, wireTypes, fieldNames, children: [] };
}

// The walk goes down to ScopeLogs; a LogRecord, a Resource and an InstrumentationScope are checked
// as length-delimited fields but not entered: entering every LogRecord (~25 fields in 200 bytes)
// measured ~20x slower per batch. The price: a fault inside a record is only found by the Collector,
// which then refuses the whole export that batch was merged into.
const SCOPE_LOGS = shape('ScopeLogs', {
  1: ['scope', WIRE_LEN],
  2: ['log_records', WIRE_LEN],
  3: ['schema_url', WIRE_LEN],
});
const RESOURCE_LOGS = shape('ResourceLogs', {
  1: ['resource', WIRE_LEN],
  2: ['scope_logs', WIRE_LEN],
  3: ['schema_url', WIRE_LEN],
});
const EXPORT_LOGS_REQUEST = shape('ExportLogsServiceRequest', { 1: ['resource_logs', WIRE_LEN] });
const LOG_RECORDS_FIELD = 2;
RESOURCE_LOGS.children[2] = SCOPE_LOGS;
EXPORT_LOGS_REQUEST.children[1] = RESOURCE_LOGS;

const ENVELOPE_LOGS_FIELD = 1;
const ENVELOPE_STATUS_FIELD = 2;
const DROPPED_CHANNEL_FULL_FIELD = 1;
const DROPPED_BATCH_FULL_FIELD = 2;
const PARTIAL_SUCCESS_FIELD = 1;
const REJECTED_LOG_RECORDS_FIELD = 1;
const ERROR_MESSAGE_FIELD = 2;

const ENVELOPE = shape('Envelope', { 1: ['logs', WIRE_LEN], 2: ['status', WIRE_LEN] });
const SENDER_STATUS = shape('SenderStatus', {
  1: ['dropped_channel_full', WIRE_VARINT],
  2: ['dropped_batch_full', WIRE_VARINT],
});
const EXPORT_LOGS_RESPONSE = shape('ExportLogsServiceResponse', { 1: ['partial_success', WIRE_LEN] });
const PARTIAL_SUCCESS = shape('ExportLogsPartialSuccess', {
  1: ['rejected_log_records', WIRE_VARINT],
  2: ['error_message', WIRE_LEN],
});

/** A read position in one payload; offsets stay absolute so errors point into the whole payload. */
class WireCursor {
  readonly bytes: Uint8Array;
  pos = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /**
   * A varint up to 64 bits as a Number: exact up to 2^53, and above that still > MAX_SAFE_INTEGER.
   * Keys and lengths almost always fit in 4 bytes (< 2^28); that path stays in small-integer
   * arithmetic, so the hot loop never boxes a double.
   */
  varint(end: number): number {
    const bytes = this.bytes;
    const limit = Math.min(end, this.pos + 4);
    let value = 0;
    let shift = 0;
    for (let pos = this.pos; pos < limit; pos++) {
      const byte = bytes[pos]!;
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.pos = pos + 1;
        return value;
      }
      shift += 7;
    }
    return this.#longVarint(end);
  }

  #longVarint(end: number): number {
    const bytes = this.bytes;
    const start = this.pos;
    let value = 0;
    let scale = 1;
    for (let i = start; i < end && i < start + 10; i++) {
      const byte = bytes[i]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (i === start + 9 && byte > 1) throw new PayloadDecodeError('varint overflows 64 bits', start);
        this.pos = i + 1;
        return value;
      }
      scale *= 128;
    }
    throw new PayloadDecodeError(
      end - start < 10 ? 'varint runs past the end of its message' : 'varint longer than 10 bytes',
      start,
    );
  }

  /** Reads a length prefix and checks that the bytes it announces are there. */
  length(end: number): number {
    const start = this.pos;
    const length = this.varint(end);
    if (length > end - this.pos) {
      throw new PayloadDecodeError(
        `length ${length} runs past the end of its message (${end - this.pos} bytes left)`,
        start,
      );
    }
    return length;
  }

  /** Reads a length prefix; returns where the value it announces ends. */
  valueEnd(end: number): number {
    const length = this.length(end);
    return this.pos + length;
  }

  /** Reads a field's key (field number << 3 | wire type), checking the field number's range. */
  key(end: number): number {
    const start = this.pos;
    const key = this.varint(end);
    if (key < 8 || key > 0xffffffff) {
      throw new PayloadDecodeError(
        `field number ${Math.floor(key / 8)} is outside 1..${MAX_FIELD_NUMBER}`,
        start,
      );
    }
    return key;
  }

  /** Skips a field's value; the key was read from `keyOffset`. */
  skip(wireType: number, end: number, keyOffset: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint(end);
        return;
      case WIRE_I64:
        this.fixed(8, end, keyOffset);
        return;
      case WIRE_LEN: {
        const length = this.length(end);
        this.pos += length;
        return;
      }
      case WIRE_I32:
        this.fixed(4, end, keyOffset);
        return;
      case WIRE_START_GROUP:
      case WIRE_END_GROUP:
        throw new PayloadDecodeError(`group (wire type ${wireType}) is not supported`, keyOffset);
      default:
        throw new PayloadDecodeError(`invalid wire type ${wireType}`, keyOffset);
    }
  }

  fixed(size: number, end: number, keyOffset: number): void {
    if (size > end - this.pos) {
      throw new PayloadDecodeError(
        `${size}-byte fixed-width value runs past the end of its message`,
        keyOffset,
      );
    }
    this.pos += size;
  }
}

/** Field number of `key`, checking a known field's wire type against `shape`. */
function knownField(shape: MessageShape, key: number, keyOffset: number): number {
  const field = key >>> 3;
  const wireType = key & 7;
  const expected = field < shape.wireTypes.length ? shape.wireTypes[field]! : UNKNOWN_FIELD;
  if (expected !== UNKNOWN_FIELD && wireType !== expected) {
    throw new PayloadDecodeError(
      `${shape.name}.${shape.fieldNames[field]} (field ${field}) has wire type ${wireType} (${WIRE_TYPE_NAMES[wireType]}), expected ${expected} (${WIRE_TYPE_NAMES[expected]})`,
      keyOffset,
    );
  }
  return field;
}

/**
 * Validates the message in [cursor.pos, end) against `shape`, entering the fields that have a child
 * shape, and returns how many LogRecords it holds. Leaves the cursor at `end`.
 */
function walk(cursor: WireCursor, end: number, shape: MessageShape): number {
  let records = 0;
  while (cursor.pos < end) {
    const keyOffset = cursor.pos;
    const key = cursor.key(end);
    const field = knownField(shape, key, keyOffset);
    const child = shape.children[field];
    if (child !== undefined) {
      records += walk(cursor, cursor.valueEnd(end), child);
      continue;
    }
    if (shape === SCOPE_LOGS && field === LOG_RECORDS_FIELD) records++;
    cursor.skip(key & 7, end, keyOffset);
  }
  return records;
}

/**
 * Validates the wire structure of an ExportLogsServiceRequest down to its ScopeLogs, and returns its
 * number of LogRecords exactly. LogRecords, Resources and InstrumentationScopes are checked as
 * length-delimited fields, not entered. Unknown fields are skipped, as protobuf requires.
 * @throws PayloadDecodeError on a bad varint, a length past the end, a wrong wire type for a known
 *   field, wire type 6 or 7, or a group.
 */
export function countLogRecords(payload: Uint8Array): number {
  return walk(new WireCursor(payload), payload.length, EXPORT_LOGS_REQUEST);
}

export type EnvelopeContent =
  | { kind: 'logs'; request: Uint8Array; records: number }
  | { kind: 'status'; droppedChannelFull: number; droppedBatchFull: number };

function safeCount(value: number, field: string, offset: number): number {
  if (value > Number.MAX_SAFE_INTEGER) {
    throw new PayloadDecodeError(`${field} ${value} is above Number.MAX_SAFE_INTEGER`, offset);
  }
  return value;
}

/** Reads a SenderStatus in [cursor.pos, end) into `into`; a field already there is overwritten, as protobuf merges. */
function readSenderStatus(cursor: WireCursor, end: number, into: { channel: number; batch: number }): void {
  while (cursor.pos < end) {
    const keyOffset = cursor.pos;
    const key = cursor.key(end);
    const field = knownField(SENDER_STATUS, key, keyOffset);
    if (field === DROPPED_CHANNEL_FULL_FIELD) {
      into.channel = safeCount(cursor.varint(end), 'dropped_channel_full', keyOffset);
    } else if (field === DROPPED_BATCH_FULL_FIELD) {
      into.batch = safeCount(cursor.varint(end), 'dropped_batch_full', keyOffset);
    } else {
      cursor.skip(key & 7, end, keyOffset);
    }
  }
}

/**
 * Walks an Envelope (tag-2 payload). `logs`: validated and counted as by {@link countLogRecords}, its
 * request a subarray of `payload`. `status`: the two counts. As protobuf parses a oneof, the last
 * member on the wire wins, and consecutive occurrences of the same message member merge (for `logs`,
 * the request is then their concatenation, a copy).
 * @throws PayloadDecodeError on malformed input, counts above Number.MAX_SAFE_INTEGER, or no member set.
 */
export function decodeEnvelope(payload: Uint8Array): EnvelopeContent {
  const cursor = new WireCursor(payload);
  const end = payload.length;
  let kind: 'logs' | 'status' | undefined;
  let logsParts: Uint8Array[] = [];
  let records = 0;
  const status = { channel: 0, batch: 0 };
  while (cursor.pos < end) {
    const keyOffset = cursor.pos;
    const key = cursor.key(end);
    const field = knownField(ENVELOPE, key, keyOffset);
    if (field !== ENVELOPE_LOGS_FIELD && field !== ENVELOPE_STATUS_FIELD) {
      cursor.skip(key & 7, end, keyOffset);
      continue;
    }
    const valueEnd = cursor.valueEnd(end);
    if (field === ENVELOPE_LOGS_FIELD) {
      if (kind !== 'logs') {
        logsParts = [];
        records = 0;
      }
      kind = 'logs';
      const start = cursor.pos;
      records += walk(cursor, valueEnd, EXPORT_LOGS_REQUEST);
      logsParts.push(payload.subarray(start, valueEnd));
    } else {
      if (kind !== 'status') {
        status.channel = 0;
        status.batch = 0;
      }
      kind = 'status';
      readSenderStatus(cursor, valueEnd, status);
    }
  }
  if (kind === 'status') {
    return { kind, droppedChannelFull: status.channel, droppedBatchFull: status.batch };
  }
  if (kind === 'logs') {
    const request = logsParts.length === 1 ? logsParts[0]! : Buffer.concat(logsParts);
    return { kind, request, records };
  }
  throw new PayloadDecodeError('Envelope has neither logs nor status set', 0);
}

const utf8 = new TextDecoder();

/** Reads an ExportLogsPartialSuccess in [cursor.pos, end), merging into `into`. */
function readPartialSuccess(
  cursor: WireCursor,
  end: number,
  into: { rejected: number; errorMessage: string },
): void {
  while (cursor.pos < end) {
    const keyOffset = cursor.pos;
    const key = cursor.key(end);
    const field = knownField(PARTIAL_SUCCESS, key, keyOffset);
    if (field === REJECTED_LOG_RECORDS_FIELD) {
      const valueOffset = cursor.pos;
      const rejected = cursor.varint(end);
      // int64: a negative value is a 10-byte varint with bit 63 set.
      if (cursor.pos - valueOffset === 10 && cursor.bytes[cursor.pos - 1] === 1) {
        throw new PayloadDecodeError('rejected_log_records is negative', keyOffset);
      }
      into.rejected = safeCount(rejected, 'rejected_log_records', keyOffset);
    } else if (field === ERROR_MESSAGE_FIELD) {
      const length = cursor.length(end);
      into.errorMessage = utf8.decode(cursor.bytes.subarray(cursor.pos, cursor.pos + length));
      cursor.pos += length;
    } else {
      cursor.skip(key & 7, end, keyOffset);
    }
  }
}

/**
 * Reads `partial_success` from an ExportLogsServiceResponse: `{ rejected: 0, errorMessage: '' }` when
 * absent (full success).
 * @throws PayloadDecodeError on malformed input, or a negative or unsafe rejected_log_records.
 */
export function rejectedLogRecords(response: Uint8Array): { rejected: number; errorMessage: string } {
  const cursor = new WireCursor(response);
  const end = response.length;
  const result = { rejected: 0, errorMessage: '' };
  while (cursor.pos < end) {
    const keyOffset = cursor.pos;
    const key = cursor.key(end);
    if (knownField(EXPORT_LOGS_RESPONSE, key, keyOffset) === PARTIAL_SUCCESS_FIELD) {
      readPartialSuccess(cursor, cursor.valueEnd(end), result);
    } else {
      cursor.skip(key & 7, end, keyOffset);
    }
  }
  return result;
}
