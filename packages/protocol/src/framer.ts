import { GSSENC_REQUEST_CODE, SSL_REQUEST_CODE } from "./codes.js";
import { ProtocolError } from "./errors.js";

/** One complete message. */
export interface Frame {
  /** The type byte; for a startup-style message, the int32 after the length (protocol version or request code). */
  readonly code: number;
  /** The declared length: it counts itself and the payload (and a startup message's code), not the type byte. */
  readonly length: number;
  /** The bytes after the header (after the code, for a startup-style message). */
  readonly payload: Buffer;
}

/** Receives each complete message, in order. */
export type FrameHandler = (frame: Frame) => void;

/**
 * Largest declared length accepted by default: PostgreSQL's own limit for any message (MaxAllocSize - 1).
 * A pooler should set a far smaller one for the client direction.
 */
export const DEFAULT_MAX_MESSAGE_LENGTH = 0x3fffffff;
/** Largest startup-style message accepted by default: PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
export const DEFAULT_MAX_STARTUP_LENGTH = 10_000;

/** Options of {@link MessageFramer}. */
export interface MessageFramerOptions {
  /** Expect a startup-style message (no type byte) first: true for the client direction. Default false. */
  readonly startup?: boolean;
  /** Declared lengths above this are rejected from the header. Default {@link DEFAULT_MAX_MESSAGE_LENGTH}. */
  readonly maxMessageLength?: number;
  /** The same for startup-style messages. Default {@link DEFAULT_MAX_STARTUP_LENGTH}. */
  readonly maxStartupLength?: number;
}

const REGULAR_HEADER = 5; // type byte + int32 length
const STARTUP_HEADER = 8; // int32 length + int32 code
const EMPTY = Buffer.alloc(0);

function describe(code: number): string {
  return code >= 0x20 && code < 0x7f ? `'${String.fromCharCode(code)}'` : `0x${code.toString(16)}`;
}

/** @internal Validates a declared length from the header alone, before any body byte is buffered. */
export function checkLength(length: number, code: number, startup: boolean, max: number): void {
  const min = startup ? STARTUP_HEADER : 4;
  if (length < min) {
    throw new ProtocolError(
      "MALFORMED_MESSAGE",
      startup
        ? `invalid length of startup packet: ${length}`
        : `invalid length ${length} of message ${describe(code)}`,
    );
  }
  if (length > max) {
    const what = startup ? "startup packet" : `message ${describe(code)}`;
    throw new ProtocolError("MESSAGE_TOO_LARGE", `${what} of ${length} bytes exceeds the limit of ${max}`);
  }
}

// Up to this size a spanning body is allocated whole at once; beyond, the buffer grows with the bytes
// received (×1.5), so a declared length alone never makes us allocate much.
const TRUSTED_BODY = 8 * 1024;

/**
 * @internal The body of one message that spans chunks. Every byte is copied once (plus the ×1.5 growth
 * copies of a large body); the finished body is handed over and the collector forgets it, so a payload is
 * never overwritten and a large message does not pin memory after it is delivered.
 */
export class BodyCollector {
  #buf: Buffer = EMPTY;
  #len = 0;
  #need = 0;

  /** Bytes held. */
  get length(): number {
    return this.#len;
  }

  /** Starts a body of `need` bytes with `chunk[from..end)` (fewer than `need`). */
  start(need: number, chunk: Buffer, from: number, end: number): void {
    const have = end - from;
    const size = need <= TRUSTED_BODY ? need : Math.min(need, Math.max(TRUSTED_BODY, have * 2));
    this.#buf = Buffer.allocUnsafe(size);
    this.#need = need;
    this.#len = chunk.copy(this.#buf, 0, from, end);
  }

  /** Takes what is still needed from the start of `chunk`; returns how many bytes it took. */
  add(chunk: Buffer): number {
    const n = Math.min(this.#need - this.#len, chunk.length);
    const want = this.#len + n;
    if (want > this.#buf.length) {
      const grown = Buffer.allocUnsafe(
        Math.min(this.#need, Math.max(want, this.#buf.length + (this.#buf.length >> 1))),
      );
      this.#buf.copy(grown, 0, 0, this.#len);
      this.#buf = grown;
    }
    chunk.copy(this.#buf, this.#len, 0, n);
    this.#len = want;
    return n;
  }

  /** True when the whole body is in. */
  get complete(): boolean {
    return this.#len === this.#need;
  }

  /** Hands over the finished body. */
  take(): Buffer {
    const body = this.#buf.length === this.#len ? this.#buf : this.#buf.subarray(0, this.#len);
    this.#buf = EMPTY;
    this.#len = 0;
    this.#need = 0;
    return body;
  }
}

/**
 * Splits a byte stream into messages. Feed it each chunk as it arrives; it calls back once per complete
 * message, in order, then keeps any partial message for the next chunk.
 *
 * - **Zero copy where possible.** A message that lies inside one chunk is delivered as a view into that
 *   chunk. Only a message that spans chunks is copied, once, into a buffer that is then handed over with
 *   the frame and never reused, so every payload stays valid after later `push()` calls (as long as the
 *   caller does not reuse its chunks).
 * - **Limits from the header.** A declared length above the limit, or below the minimum, throws a
 *   {@link ProtocolError} as soon as the 5 (or 8) header bytes are in, before any body is buffered.
 * - **Startup mode.** The first client message has no type byte (`int32 length, int32 code`): the
 *   StartupMessage, SSLRequest, GSSENCRequest or CancelRequest. The framer stays in startup mode after an
 *   SSLRequest or GSSENCRequest (the next message is startup-style again) and switches to regular mode after
 *   any other startup-style message. Bytes following an SSLRequest or GSSENCRequest in the same chunk throw
 *   (`UNEXPECTED_MESSAGE`), as in PostgreSQL: they would bypass the encryption being negotiated
 *   (CVE-2021-23214).
 * - **Fail stop.** After any error, from framing or thrown by the handler, the rest of that chunk is lost,
 *   so every later `push()` rethrows it: close the connection.
 *
 * @example
 * const framer = new MessageFramer({ startup: true, maxMessageLength: 1 << 20 });
 * socket.on("data", (chunk) => framer.push(chunk, (frame) => handle(frame)));
 */
export class MessageFramer {
  readonly #max: number;
  readonly #maxStartup: number;
  #startup: boolean;
  readonly #head = Buffer.allocUnsafe(STARTUP_HEADER);
  #headLen = 0;
  // The message whose body is being collected, if any.
  #pending = false;
  #code = 0;
  #length = 0;
  readonly #body = new BodyCollector();
  #failure: unknown = undefined;
  #failed = false;

  constructor(options: MessageFramerOptions = {}) {
    this.#startup = options.startup ?? false;
    this.#max = options.maxMessageLength ?? DEFAULT_MAX_MESSAGE_LENGTH;
    this.#maxStartup = options.maxStartupLength ?? DEFAULT_MAX_STARTUP_LENGTH;
  }

  /** `startup` while the next message is expected without a type byte. */
  get mode(): "startup" | "regular" {
    return this.#startup ? "startup" : "regular";
  }

  /** Bytes received of the message not yet complete (what is held, plus its parsed header); apply backpressure on this. */
  get bufferedBytes(): number {
    if (!this.#pending) return this.#headLen;
    return (this.#startup ? STARTUP_HEADER : REGULAR_HEADER) + this.#body.length;
  }

  /**
   * Expects the next message to be startup-style. Only valid between messages (e.g. on a stream restarting
   * after a TLS upgrade); throws if part of a message is buffered.
   */
  expectStartup(): void {
    if (this.#headLen > 0 || this.#pending) {
      throw new ProtocolError(
        "UNEXPECTED_MESSAGE",
        "expected a startup packet, but a message is partly received",
      );
    }
    this.#startup = true;
  }

  /** Frames `chunk`, calling `onFrame` for each message it completes. */
  push(chunk: Buffer, onFrame: FrameHandler): void {
    if (this.#failed) throw this.#failure;
    try {
      this.#push(chunk, onFrame);
    } catch (error) {
      this.#failed = true;
      this.#failure = error;
      throw error;
    }
  }

  #push(chunk: Buffer, onFrame: FrameHandler): void {
    const end = chunk.length;
    let pos = this.#headLen > 0 || this.#pending ? this.#resume(chunk, onFrame) : 0;
    while (pos < end) {
      const startup = this.#startup;
      const headerSize = startup ? STARTUP_HEADER : REGULAR_HEADER;
      if (end - pos < headerSize) break;
      let code: number;
      let length: number;
      if (startup) {
        length = chunk.readInt32BE(pos);
        code = chunk.readInt32BE(pos + 4);
        checkLength(length, code, true, this.#maxStartup);
      } else {
        code = chunk[pos] as number;
        length = chunk.readInt32BE(pos + 1);
        checkLength(length, code, false, this.#max);
      }
      const next = pos + (startup ? length : length + 1);
      if (next > end) {
        this.#collect(code, length, chunk, pos + headerSize, end);
        return;
      }
      const payload = chunk.subarray(pos + headerSize, next);
      pos = next;
      this.#emit(code, length, payload, end - pos, onFrame);
    }
    if (pos < end) this.#headLen = chunk.copy(this.#head, 0, pos, end);
  }

  // Continues the partial message from the start of `chunk`; returns where the next message starts.
  #resume(chunk: Buffer, onFrame: FrameHandler): number {
    const end = chunk.length;
    if (this.#pending) {
      const taken = this.#body.add(chunk);
      if (!this.#body.complete) return end;
      this.#pending = false;
      this.#emit(this.#code, this.#length, this.#body.take(), end - taken, onFrame);
      return taken;
    }
    const startup = this.#startup;
    const headerSize = startup ? STARTUP_HEADER : REGULAR_HEADER;
    const taken = chunk.copy(this.#head, this.#headLen, 0, headerSize - this.#headLen);
    this.#headLen += taken;
    if (this.#headLen < headerSize) return end;
    this.#headLen = 0;
    const head = this.#head;
    const code = startup ? head.readInt32BE(4) : (head[0] as number);
    const length = startup ? head.readInt32BE(0) : head.readInt32BE(1);
    checkLength(length, code, startup, startup ? this.#maxStartup : this.#max);
    const next = taken + length + (startup ? 0 : 1) - headerSize;
    if (next > end) {
      this.#collect(code, length, chunk, taken, end);
      return end;
    }
    this.#emit(code, length, chunk.subarray(taken, next), end - next, onFrame);
    return next;
  }

  #collect(code: number, length: number, chunk: Buffer, from: number, end: number): void {
    this.#pending = true;
    this.#code = code;
    this.#length = length;
    this.#body.start(this.#startup ? length - STARTUP_HEADER : length - 4, chunk, from, end);
  }

  #emit(code: number, length: number, payload: Buffer, trailing: number, onFrame: FrameHandler): void {
    if (this.#startup) {
      if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
        if (trailing > 0) {
          const what = code === SSL_REQUEST_CODE ? "SSL" : "GSSAPI encryption";
          throw new ProtocolError("UNEXPECTED_MESSAGE", `received unencrypted data after ${what} request`);
        }
      } else {
        this.#startup = false;
      }
    }
    onFrame({ code, length, payload });
  }
}
