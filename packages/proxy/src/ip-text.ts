/**
 * IP address text, apart from the PROXY protocol that carries it: `writeIPv4` / `writeIPv6` turn
 * text already validated by node:net into bytes (16 per address, IPv4 as its last 4) in the caller's
 * buffer, `formatIPv4` / `formatIPv6` turn bytes back into canonical text (RFC 5952), and the
 * `*Completion` functions tell whether partial text can still become a valid address.
 */

const DOT = 0x2e;
const COLON = 0x3a;

/** Writes the dotted quad in `address[start, end)`, already validated, as 4 bytes at `offset`. */
export function writeIPv4(
  address: string,
  start: number,
  end: number,
  bytes: Uint8Array,
  offset: number,
): void {
  let octet = 0;
  let position = offset;
  for (let i = start; i < end; i++) {
    const code = address.charCodeAt(i);
    if (code === DOT) {
      bytes[position++] = octet;
      octet = 0;
    } else {
      octet = octet * 10 + code - 0x30;
    }
  }
  bytes[position] = octet;
}

/** Writes the IPv6 address in `address[0, end)`, already validated, as 16 bytes at `offset`. */
export function writeIPv6(address: string, end: number, bytes: Uint8Array, offset: number): void {
  let groups = 0;
  let gap = -1;
  let value = 0;
  let digits = 0;
  for (let i = 0; i < end; i++) {
    const code = address.charCodeAt(i);
    if (code === DOT) {
      writeIPv4(address, i - digits, end, bytes, offset + 2 * groups);
      groups += 2;
      digits = 0;
      break;
    }
    if (code !== COLON) {
      value = value * 16 + (code <= 0x39 ? code - 0x30 : (code | 0x20) - 0x57);
      digits++;
      continue;
    }
    if (digits > 0) writeGroup(bytes, offset, groups++, value);
    value = 0;
    digits = 0;
    if (address.charCodeAt(i + 1) === COLON) {
      gap = groups;
      i++;
    }
  }
  if (digits > 0) writeGroup(bytes, offset, groups++, value);
  if (gap === -1) return;
  // Groups after `::` were written from the gap on; move them to the end and zero the gap.
  const shift = 8 - groups;
  for (let group = groups - 1; group >= gap; group--) {
    writeGroup(
      bytes,
      offset,
      group + shift,
      (bytes[offset + 2 * group]! << 8) | bytes[offset + 2 * group + 1]!,
    );
  }
  for (let group = gap; group < gap + shift; group++) writeGroup(bytes, offset, group, 0);
}

function writeGroup(bytes: Uint8Array, offset: number, group: number, value: number): void {
  bytes[offset + 2 * group] = value >>> 8;
  bytes[offset + 2 * group + 1] = value & 0xff;
}

export function isIPv4Mapped(bytes: Uint8Array, offset: number): boolean {
  for (let i = offset; i < offset + 10; i++) if (bytes[i] !== 0) return false;
  return bytes[offset + 10] === 0xff && bytes[offset + 11] === 0xff;
}

export function formatIPv4(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** RFC 5952 text: lower case, longest run of two or more zero groups as `::`, mapped IPv4 dotted. */
export function formatIPv6(bytes: Uint8Array, offset: number): string {
  if (isIPv4Mapped(bytes, offset)) return `::ffff:${formatIPv4(bytes, offset + 12)}`;
  let runStart = -1;
  let runLength = 1;
  for (let group = 0; group < 8; ) {
    let end = group;
    while (end < 8 && bytes[offset + 2 * end] === 0 && bytes[offset + 2 * end + 1] === 0) end++;
    if (end - group > runLength) {
      runStart = group;
      runLength = end - group;
    }
    group = end + 1;
  }
  let text = '';
  for (let group = 0; group < 8; group++) {
    if (group === runStart) {
      text += group === 0 ? '::' : ':';
      group += runLength - 1;
      continue;
    }
    text += ((bytes[offset + 2 * group]! << 8) | bytes[offset + 2 * group + 1]!).toString(16);
    if (group < 7) text += ':';
  }
  return text;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function isHexDigit(code: number): boolean {
  return isDigit(code) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66);
}

/** A decimal number in `text[start, end)` with no heading zero (the spec forbids them) up to `max`. */
export function isDecimal(text: string, start: number, end: number, max: number): boolean {
  if (end === start || end - start > String(max).length) return false;
  if (end - start > 1 && text.charCodeAt(start) === 0x30) return false;
  let value = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (!isDigit(code)) return false;
    value = value * 10 + code - 0x30;
  }
  return value <= max;
}

export function ipv4Completion(field: string): number {
  let dots = 0;
  let octetStart = 0;
  for (let i = 0; i < field.length; i++) {
    const code = field.charCodeAt(i);
    if (code === DOT) {
      if (!isDecimal(field, octetStart, i, 255) || ++dots > 3) return -1;
      octetStart = i + 1;
    } else if (!isDigit(code)) {
      return -1;
    }
  }
  return dottedTailCompletion(field, octetStart, dots);
}

/** Bytes to finish a dotted quad of which `dots` dots are written and `field[octetStart..]` is the last octet so far. */
function dottedTailCompletion(field: string, octetStart: number, dots: number): number {
  if (octetStart === field.length) return 1 + 2 * (3 - dots);
  return isDecimal(field, octetStart, field.length, 255) ? 2 * (3 - dots) : -1;
}

const AT_START = 0;
const AT_LEADING_COLON = 1;
const IN_GROUP = 2;
const AFTER_COLON = 3;
const AFTER_DOUBLE_COLON = 4;
const IN_DOTTED_TAIL = 5;

/**
 * The IPv6 text forms `inet_pton` accepts (and Node's `isIPv6` without zone ids): up to eight groups
 * of 1-4 hex digits, at most one `::` standing for one or more zero groups, optionally ending in a
 * dotted quad worth two groups.
 */
export function ipv6Completion(field: string): number {
  let state = AT_START;
  let groups = 0;
  let compressed = false;
  let partStart = 0;
  let dots = 0;
  for (let i = 0; i < field.length; i++) {
    const code = field.charCodeAt(i);
    if (code === COLON) {
      if (state === AT_START) {
        state = AT_LEADING_COLON;
      } else if (state === IN_GROUP) {
        groups++;
        state = AFTER_COLON;
      } else if ((state === AT_LEADING_COLON || state === AFTER_COLON) && !compressed) {
        compressed = true;
        state = AFTER_DOUBLE_COLON;
      } else {
        return -1;
      }
    } else if (code === DOT) {
      if ((state !== IN_GROUP && state !== IN_DOTTED_TAIL) || dots === 3) return -1;
      if (!isDecimal(field, partStart, i, 255)) return -1;
      state = IN_DOTTED_TAIL;
      dots++;
      partStart = i + 1;
    } else if (state === IN_DOTTED_TAIL) {
      if (!isDigit(code)) return -1;
    } else if (!isHexDigit(code) || state === AT_LEADING_COLON) {
      return -1;
    } else if (state !== IN_GROUP) {
      state = IN_GROUP;
      partStart = i;
    } else if (i - partStart === 4) {
      return -1;
    }
  }
  const maxGroups = compressed ? 7 : 8;
  switch (state) {
    case AT_START:
      return 2;
    case AT_LEADING_COLON:
      return 1;
    case IN_GROUP:
      if (groups + 1 > maxGroups) return -1;
      return compressed || groups + 1 === 8 ? 0 : 2;
    case AFTER_COLON:
      return groups + 1 <= maxGroups ? 1 : -1;
    case AFTER_DOUBLE_COLON:
      return groups <= maxGroups ? 0 : -1;
    default:
      if (compressed ? groups + 2 > 7 : groups + 2 !== 8) return -1;
      return dottedTailCompletion(field, partStart, dots);
  }
}
