import { SwitchyardError } from '@switchyard/telemetry';

/**
 * A frame header announces a payload longer than the reader accepts. The stream cannot be
 * resynchronised after this (DERP has no frame delimiter), so the connection must be closed.
 */
export class DerpFrameTooLargeError extends SwitchyardError {
  readonly frameType: number;
  readonly frameLength: number;
  readonly maxFrameLength: number;

  constructor(frameType: number, frameLength: number, maxFrameLength: number) {
    super(
      'SWY_ERR_DERP_FRAME_TOO_LARGE',
      `DERP frame type 0x${frameType.toString(16).padStart(2, '0')} announces ${frameLength} payload bytes; ` +
        `at most ${maxFrameLength} are accepted, so the connection must be closed`,
    );
    this.frameType = frameType;
    this.frameLength = frameLength;
    this.maxFrameLength = maxFrameLength;
  }
}

/** A frame payload does not have the layout its frame type requires (too short, too long, wrong size). */
export class DerpPayloadError extends SwitchyardError {
  readonly frameType: number;
  readonly payloadLength: number;

  constructor(frameType: number, frameName: string, payloadLength: number, problem: string) {
    super('SWY_ERR_DERP_PAYLOAD', `DERP ${frameName} frame with ${payloadLength} payload bytes: ${problem}`);
    this.frameType = frameType;
    this.payloadLength = payloadLength;
  }
}

/** An encoder was given a value the wire format cannot carry (wrong key size, packet over 64 KiB, ...). */
export class DerpEncodeError extends SwitchyardError {
  readonly field: string;

  constructor(field: string, problem: string) {
    super('SWY_ERR_DERP_ENCODE', `DERP encode: ${field}: ${problem}`);
    this.field = field;
  }
}

/** A node key in text or raw form is malformed. */
export class DerpKeyError extends SwitchyardError {
  constructor(problem: string) {
    super('SWY_ERR_DERP_KEY', `DERP node key: ${problem}`);
  }
}

/** Why a handshake frame was rejected; a closed set, safe to use as a metric label. */
export type HandshakeFailure = 'short' | 'long' | 'bad_magic' | 'zero_key' | 'box_open' | 'bad_json';

/** A handshake frame (server key, client info, server info) failed validation or decryption. */
export class DerpHandshakeError extends SwitchyardError {
  readonly reason: HandshakeFailure;

  constructor(reason: HandshakeFailure, message: string) {
    super('SWY_ERR_DERP_HANDSHAKE', `DERP handshake: ${message}`);
    this.reason = reason;
  }
}

/**
 * A relay URL refused to become a DERP connection: an HTTP status other than 101 Switching
 * Protocols (the body's start is kept for the message), a WebSocket without the `derp`
 * subprotocol, or an HTTP reply to a fast-start request (status then as in that reply).
 */
export class DerpUpgradeError extends SwitchyardError {
  readonly url: string;
  /** The HTTP status the server answered; 101 when the upgrade happened but was unusable. */
  readonly status: number;
  readonly body: string;

  constructor(url: string, status: number, problem: string, body = '') {
    super(
      'SWY_ERR_DERP_UPGRADE_REFUSED',
      `DERP upgrade at ${url} refused: ${problem}${body === '' ? '' : ` (body: ${JSON.stringify(body)})`}; ` +
        'check that the URL names a DERP server path such as http://host:port/derp',
    );
    this.url = url;
    this.status = status;
    this.body = body;
  }
}
