import { BackendMessage, TransactionStatus } from "./codes.js";
import { ProtocolError } from "./errors.js";
import { BodyCollector, checkLength, DEFAULT_MAX_MESSAGE_LENGTH, type FrameHandler } from "./framer.js";

/** Options of {@link FrameScanner}. */
export interface FrameScannerOptions {
  /** Declared lengths above this are rejected from the header. Default {@link DEFAULT_MAX_MESSAGE_LENGTH}. */
  readonly maxMessageLength?: number;
  /**
   * Type bytes of the messages to deliver whole to `scan()`'s handler, e.g. ErrorResponse and
   * ParameterStatus. Everything else is only counted.
   */
  readonly capture?: Iterable<number>;
}

const HEADER = 5;
const READY_FOR_QUERY = BackendMessage.ReadyForQuery;

/**
 * Walks the message headers of a regular-mode stream without materialising messages, for the forwarding
 * hot path: the caller forwards each chunk as is and asks the scanner where the stream stands, e.g.
 * whether the chunk ended right after a ReadyForQuery and with which transaction status.
 *
 * Per chunk it reads only the 5-byte headers and jumps over bodies; it allocates nothing except for a
 * captured message that spans chunks (copied once, as by {@link MessageFramer}). A header or body cut by a
 * chunk boundary is carried over in the scanner's state. ReadyForQuery's status byte is tracked even when
 * it arrives in the next chunk. Lengths are checked from the header as in {@link MessageFramer}, and it is
 * fail-stop the same way.
 *
 * @example
 * const scanner = new FrameScanner({ capture: [BackendMessage.ParameterStatus] });
 * server.on("data", (chunk) => {
 *   scanner.scan(chunk, (frame) => trackParameter(parseParameterStatus(frame)));
 *   client.write(chunk);
 *   if (scanner.endsWithReadyForQuery && scanner.readyStatus === TransactionStatus.Idle) releaseToPool();
 * });
 */
export class FrameScanner {
  readonly #max: number;
  readonly #capture = new Uint8Array(256);
  readonly #head = Buffer.allocUnsafe(HEADER);
  #headLen = 0;
  // The message past its header whose body has not all arrived.
  #inBody = false;
  #collecting = false;
  #code = 0;
  #length = 0;
  #skip = 0;
  readonly #body = new BodyCollector();
  #messages = 0;
  #readyCount = 0;
  #readyStatus = 0;
  #lastCode = 0;
  #failure: unknown = undefined;
  #failed = false;

  constructor(options: FrameScannerOptions = {}) {
    this.#max = options.maxMessageLength ?? DEFAULT_MAX_MESSAGE_LENGTH;
    for (const code of options.capture ?? []) this.#capture[code] = 1;
  }

  /** Complete messages seen. */
  get messages(): number {
    return this.#messages;
  }

  /** ReadyForQuery messages seen. */
  get readyCount(): number {
    return this.#readyCount;
  }

  /** The status byte of the latest ReadyForQuery ({@link TransactionStatus}); 0 before the first. */
  get readyStatus(): number {
    return this.#readyStatus;
  }

  /** The type byte of the latest complete message; 0 before the first. */
  get lastCode(): number {
    return this.#lastCode;
  }

  /** True when no message is partly received: everything scanned so far ended on a message boundary. */
  get atBoundary(): boolean {
    return this.#headLen === 0 && !this.#inBody;
  }

  /** True when the stream so far ends exactly with a ReadyForQuery: the server waits for the client. */
  get endsWithReadyForQuery(): boolean {
    return this.atBoundary && this.#lastCode === READY_FOR_QUERY;
  }

  /** Bytes held: a cut header, or the collected part of a captured message. Skipped bodies hold none. */
  get bufferedBytes(): number {
    return this.#headLen + this.#body.length;
  }

  /** Scans `chunk`, calling `onFrame` for each captured message it completes. */
  scan(chunk: Buffer, onFrame?: FrameHandler): void {
    if (this.#failed) throw this.#failure;
    try {
      this.#scan(chunk, onFrame);
    } catch (error) {
      this.#failed = true;
      this.#failure = error;
      throw error;
    }
  }

  #scan(chunk: Buffer, onFrame: FrameHandler | undefined): void {
    const end = chunk.length;
    const capture = this.#capture;
    let pos = this.#headLen > 0 || this.#inBody ? this.#resume(chunk, onFrame) : 0;
    while (end - pos >= HEADER) {
      const code = chunk[pos] as number;
      const length = chunk.readInt32BE(pos + 1);
      this.#check(code, length);
      const next = pos + 1 + length;
      if (next > end) {
        this.#begin(code, length, chunk, pos + HEADER, end);
        return;
      }
      if (code === READY_FOR_QUERY) this.#ready(chunk[pos + HEADER] as number);
      this.#messages++;
      this.#lastCode = code;
      if (capture[code] === 1 && onFrame)
        onFrame({ code, length, payload: chunk.subarray(pos + HEADER, next) });
      pos = next;
    }
    if (pos < end) this.#headLen = chunk.copy(this.#head, 0, pos, end);
  }

  #resume(chunk: Buffer, onFrame: FrameHandler | undefined): number {
    const end = chunk.length;
    if (this.#inBody) {
      if (!this.#collecting) {
        if (this.#skip > end) {
          this.#skip -= end;
          return end;
        }
        const taken = this.#skip;
        this.#skip = 0;
        this.#inBody = false;
        this.#messages++;
        this.#lastCode = this.#code;
        return taken;
      }
      const taken = this.#body.add(chunk);
      if (!this.#body.complete) return end;
      this.#inBody = false;
      this.#complete(this.#code, this.#length, this.#body.take(), onFrame);
      return taken;
    }
    const taken = chunk.copy(this.#head, this.#headLen, 0, HEADER - this.#headLen);
    this.#headLen += taken;
    if (this.#headLen < HEADER) return end;
    this.#headLen = 0;
    const code = this.#head[0] as number;
    const length = this.#head.readInt32BE(1);
    this.#check(code, length);
    const next = taken + length - 4;
    if (next > end) {
      this.#begin(code, length, chunk, taken, end);
      return end;
    }
    this.#complete(code, length, chunk.subarray(taken, next), onFrame);
    return next;
  }

  #check(code: number, length: number): void {
    checkLength(length, code, false, this.#max);
    if (code === READY_FOR_QUERY && length !== 5) {
      throw new ProtocolError("MALFORMED_MESSAGE", `invalid length ${length} of ReadyForQuery`);
    }
  }

  #begin(code: number, length: number, chunk: Buffer, from: number, end: number): void {
    this.#inBody = true;
    this.#code = code;
    this.#length = length;
    this.#collecting = code === READY_FOR_QUERY || this.#capture[code] === 1;
    if (this.#collecting) this.#body.start(length - 4, chunk, from, end);
    else this.#skip = length - 4 - (end - from);
  }

  #complete(code: number, length: number, payload: Buffer, onFrame: FrameHandler | undefined): void {
    if (code === READY_FOR_QUERY) this.#ready(payload[0] as number);
    this.#messages++;
    this.#lastCode = code;
    if (this.#capture[code] === 1 && onFrame) onFrame({ code, length, payload });
  }

  #ready(status: number): void {
    if (
      status !== TransactionStatus.Idle &&
      status !== TransactionStatus.InTransaction &&
      status !== TransactionStatus.Failed
    ) {
      throw new ProtocolError("MALFORMED_MESSAGE", `invalid ReadyForQuery status 0x${status.toString(16)}`);
    }
    this.#readyStatus = status;
    this.#readyCount++;
  }
}
