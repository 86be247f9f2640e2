import { ProtocolError } from "./errors.js";
import type { Frame } from "./framer.js";

/**
 * A bounds-checked cursor over one message payload. Every read past `end` throws a
 * {@link ProtocolError} (`MALFORMED_MESSAGE`) instead of returning garbage or a `RangeError`, so a
 * parser built on it cannot be made to misread a hostile message.
 *
 * @example
 * const r = new Reader(frame.payload, "Parse");
 * const name = r.cstring();
 * const query = r.cstring();
 * const types = Array.from({ length: r.uint16() }, () => r.uint32());
 * r.end();
 */
export class Reader {
  /** Position of the next read, in `buffer` coordinates. */
  offset: number;
  readonly #buffer: Buffer;
  readonly #end: number;
  readonly #label: string;

  /**
   * @param buffer the bytes to read, usually a frame's payload
   * @param label names the message in error messages, e.g. `"Bind"`
   * @param offset first byte to read, default 0
   * @param end one past the last byte to read, default `buffer.length`
   */
  constructor(buffer: Buffer, label = "message", offset = 0, end = buffer.length) {
    this.#buffer = buffer;
    this.#label = label;
    this.offset = offset;
    this.#end = end;
  }

  /** Bytes left before the end. */
  get remaining(): number {
    return this.#end - this.offset;
  }

  #take(n: number): number {
    const at = this.offset;
    if (n > this.#end - at) {
      throw new ProtocolError(
        "MALFORMED_MESSAGE",
        `${this.#label}: truncated, needs ${n} bytes at offset ${at} but ${this.#end - at} remain`,
      );
    }
    this.offset = at + n;
    return at;
  }

  /** One byte, unsigned (the protocol's Byte1 / Int8). */
  int8(): number {
    return this.#buffer[this.#take(1)] as number;
  }

  /** A signed big-endian Int16 (format codes, column counts as PostgreSQL declares them). */
  int16(): number {
    return this.#buffer.readInt16BE(this.#take(2));
  }

  /** An unsigned big-endian 16-bit count (PostgreSQL reads parameter and format counts unsigned). */
  uint16(): number {
    return this.#buffer.readUInt16BE(this.#take(2));
  }

  /** A signed big-endian Int32. */
  int32(): number {
    return this.#buffer.readInt32BE(this.#take(4));
  }

  /** An unsigned big-endian 32-bit value (type OIDs). */
  uint32(): number {
    return this.#buffer.readUInt32BE(this.#take(4));
  }

  /** A NUL-terminated UTF-8 string; the NUL is consumed and not returned. */
  cstring(): string {
    const start = this.offset;
    const nul = start < this.#end ? this.#buffer.indexOf(0, start) : -1;
    if (nul === -1 || nul >= this.#end) {
      throw new ProtocolError(
        "MALFORMED_MESSAGE",
        `${this.#label}: string at offset ${start} has no NUL terminator`,
      );
    }
    this.offset = nul + 1;
    return this.#buffer.toString("utf8", start, nul);
  }

  /** `n` bytes decoded as UTF-8. */
  string(n: number): string {
    const at = this.#take(checkCount(n, this.#label));
    return this.#buffer.toString("utf8", at, at + n);
  }

  /** `n` bytes as a view into the underlying buffer (no copy). */
  bytes(n: number): Buffer {
    const at = this.#take(checkCount(n, this.#label));
    return this.#buffer.subarray(at, at + n);
  }

  /** Everything left, as a view (no copy). */
  rest(): Buffer {
    return this.bytes(this.remaining);
  }

  /** Throws unless every byte was read: trailing bytes mean the message was not what it claimed. */
  end(): void {
    if (this.offset !== this.#end) {
      throw new ProtocolError(
        "MALFORMED_MESSAGE",
        `${this.#label}: ${this.#end - this.offset} unexpected trailing bytes`,
      );
    }
  }
}

function checkCount(n: number, label: string): number {
  // A negative length read off the wire (other than the -1 NULL marker callers handle) is malformed.
  if (!Number.isInteger(n) || n < 0)
    throw new ProtocolError("MALFORMED_MESSAGE", `${label}: invalid length ${n}`);
  return n;
}

/**
 * A {@link Reader} over `frame`'s payload after checking that it is the expected message type; a frame of
 * another type throws `UNEXPECTED_MESSAGE`.
 *
 * @param name the expected message's name, for error messages
 */
export function readFrame(frame: Pick<Frame, "code" | "payload">, code: number, name: string): Reader {
  if (frame.code !== code) {
    const got =
      frame.code >= 0x20 && frame.code < 0x7f
        ? `'${String.fromCharCode(frame.code)}'`
        : `0x${frame.code.toString(16)}`;
    throw new ProtocolError("UNEXPECTED_MESSAGE", `expected ${name}, got message ${got}`);
  }
  return new Reader(frame.payload, name);
}
