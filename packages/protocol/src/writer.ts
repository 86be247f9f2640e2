const HEADER = 5; // type byte + int32 length
// Below this much free space after a message, the next one starts in a fresh buffer.
const MIN_TAIL = 64;
// A buffer grown past this by one large message is dropped after it, so it is not pinned for good.
const MAX_RETAINED = 64 * 1024;

/**
 * Builds messages into a growable buffer. Each message starts with 5 reserved header bytes; the body is
 * appended with `int8/int16/int32/cstring/string/bytes`, then {@link finish} back-patches the type byte
 * and the length and returns the message.
 *
 * The buffer is reused between messages without ever rewriting bytes already handed out: a finished
 * message is a view, the next message is written after it, and a new buffer is allocated only when the
 * rest is too small (growth ×1.5, as in pg-protocol). So returned buffers stay valid for good, and many
 * small messages share one allocation.
 *
 * A write that rejects its argument (out-of-range integer, string with a NUL) discards the message in
 * progress before throwing, so the writer is always ready for the next message.
 *
 * @example
 * const w = new Writer();
 * const query = w.cstring("select 1").finish(FrontendMessage.Query);
 */
export class Writer {
  readonly #initialSize: number;
  readonly #retain: number;
  #buf: Buffer;
  #start = 0; // the type byte of the message in progress
  #pos = HEADER;

  /** @param initialSize bytes of the first buffer, and of each fresh one */
  constructor(initialSize = 4096) {
    this.#initialSize = Math.max(initialSize, MIN_TAIL);
    this.#retain = Math.max(this.#initialSize, MAX_RETAINED);
    this.#buf = Buffer.allocUnsafe(this.#initialSize);
  }

  /** Body bytes written so far for the message in progress. */
  get length(): number {
    return this.#pos - this.#start - HEADER;
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const used = this.#pos - this.#start;
    const need = used + n;
    const size = need <= this.#initialSize ? this.#initialSize : need + (need >> 1);
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, this.#start, this.#pos);
    this.#buf = next;
    this.#start = 0;
    this.#pos = used;
  }

  #checkInt(value: number, min: number, max: number, what: string): void {
    if (Number.isInteger(value) && value >= min && value <= max) return;
    this.reset();
    throw new RangeError(`${what} out of range: ${value}`);
  }

  /** One byte; accepts -128..255. */
  int8(value: number): this {
    this.#checkInt(value, -0x80, 0xff, "int8");
    this.#ensure(1);
    this.#buf[this.#pos++] = value & 0xff;
    return this;
  }

  /** Big-endian 16 bits; accepts the signed and unsigned ranges, -32768..65535. */
  int16(value: number): this {
    this.#checkInt(value, -0x8000, 0xffff, "int16");
    this.#ensure(2);
    const buf = this.#buf;
    const at = this.#pos;
    buf[at] = (value >>> 8) & 0xff;
    buf[at + 1] = value & 0xff;
    this.#pos = at + 2;
    return this;
  }

  /** Big-endian 32 bits; accepts the signed and unsigned ranges (so OIDs too), -2^31..2^32-1. */
  int32(value: number): this {
    this.#checkInt(value, -0x80000000, 0xffffffff, "int32");
    this.#ensure(4);
    const buf = this.#buf;
    const at = this.#pos;
    buf[at] = (value >>> 24) & 0xff;
    buf[at + 1] = (value >>> 16) & 0xff;
    buf[at + 2] = (value >>> 8) & 0xff;
    buf[at + 3] = value & 0xff;
    this.#pos = at + 4;
    return this;
  }

  /**
   * A UTF-8 string and its NUL terminator. Throws a `TypeError` if the string contains NUL: the peer
   * would end the field there and read the rest as further fields, i.e. message injection.
   */
  cstring(value: string): this {
    if (value.includes("\0")) {
      this.reset();
      throw new TypeError("a protocol string cannot contain NUL (U+0000)");
    }
    this.string(value);
    this.#ensure(1);
    this.#buf[this.#pos++] = 0;
    return this;
  }

  /** A UTF-8 string without terminator (e.g. after an explicit length). */
  string(value: string): this {
    // 3 bytes per UTF-16 unit is the UTF-8 worst case; count exactly only when that bound does not fit.
    if (this.#pos + value.length * 3 > this.#buf.length) this.#ensure(Buffer.byteLength(value));
    this.#pos += this.#buf.write(value, this.#pos, "utf8");
    return this;
  }

  /** Raw bytes, copied in. */
  bytes(value: Uint8Array): this {
    this.#ensure(value.length);
    this.#buf.set(value, this.#pos);
    this.#pos += value.length;
    return this;
  }

  /** Ends the message with type byte `code` and returns it (header included). */
  finish(code: number): Buffer {
    this.#checkInt(code, 0, 0xff, "message code");
    this.#buf[this.#start] = code;
    return this.#complete(this.#start);
  }

  /** Ends a startup-style message (no type byte: StartupMessage, SSLRequest, CancelRequest) and returns it. */
  finishStartup(): Buffer {
    return this.#complete(this.#start + 1);
  }

  /** Discards the message in progress. */
  reset(): void {
    this.#pos = this.#start + HEADER;
  }

  #complete(from: number): Buffer {
    const start = this.#start;
    const end = this.#pos;
    // Both kinds count from the length word itself to the end.
    const length = end - start - 1;
    if (length > 0x7fffffff) {
      this.reset();
      throw new RangeError(`message of ${length} bytes exceeds the protocol's int32 length`);
    }
    this.#buf.writeInt32BE(length, start + 1);
    const message = this.#buf.subarray(from, end);
    if (this.#buf.length > this.#retain || this.#buf.length - end < MIN_TAIL) {
      this.#buf = Buffer.allocUnsafe(this.#initialSize);
      this.#start = 0;
    } else {
      this.#start = end;
    }
    this.#pos = this.#start + HEADER;
    return message;
  }
}
