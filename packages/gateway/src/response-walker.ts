import { BackendMessage } from "@pgbind/protocol";

/** Decides per server message whether the client sees it; called once its header is complete. */
export type KeepMessage = (code: number) => boolean;

/** Receives the body of each ParameterStatus the client sees, whole even when split across chunks. */
export type OnParameterStatus = (body: Buffer) => void;

/**
 * Walks the server's byte stream header by header (bodies are skipped, never copied) and returns the
 * slices to forward, leaving out messages `keep` rejects. Tracks ReadyForQuery and its status byte
 * across chunk boundaries. When nothing is dropped the chunk is returned whole: one write, no copy.
 */
export class ResponseWalker {
  /** A header cut by a chunk's end, collected byte by byte; allocated the first time that happens. */
  #head: Buffer | undefined;
  #headLen = 0;
  /** Header bytes held back from the previous chunk until we know whether the message is kept. */
  #carried: Buffer | undefined;
  #remaining = 0;
  #dropping = false;
  #inReady = false;
  /** Body parts of a ParameterStatus being collected for `onStatus`. */
  #status: Buffer[] | undefined;
  readyCount = 0;
  readyStatus = 0;
  /** True when the last chunk ended exactly after a ReadyForQuery. */
  endsWithReady = false;

  /** Starts over for a new server attachment. */
  reset(): void {
    this.#headLen = 0;
    this.#carried = undefined;
    this.#remaining = 0;
    this.#dropping = false;
    this.#inReady = false;
    this.#status = undefined;
    this.readyCount = 0;
    this.readyStatus = 0;
    this.endsWithReady = false;
  }

  walk(chunk: Buffer, keep: KeepMessage, onStatus?: OnParameterStatus): Buffer[] {
    const out: Buffer[] = [];
    let keptFrom = 0;
    let sliced = false;
    let i = 0;
    const end = chunk.length;
    this.endsWithReady = false;
    while (i < end) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, end - i);
        if (this.#inReady) {
          // ReadyForQuery's body is its one status byte.
          this.readyStatus = chunk[i] as number;
          this.readyCount++;
          this.#inReady = false;
          this.endsWithReady = i + 1 === end;
        }
        if (this.#status) {
          this.#status.push(chunk.subarray(i, i + take));
          if (take === this.#remaining) {
            const parts = this.#status;
            this.#status = undefined;
            onStatus?.(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
          }
        }
        if (this.#dropping) {
          if (i > keptFrom) out.push(chunk.subarray(keptFrom, i));
          keptFrom = i + take;
          sliced = true;
        }
        this.#remaining -= take;
        i += take;
        if (this.#remaining === 0) this.#dropping = false;
        continue;
      }
      const headerStart = i;
      let code: number;
      if (this.#headLen === 0 && end - i >= 5) {
        // The usual case: the whole header is in this chunk.
        code = chunk[i] as number;
        this.#remaining = chunk.readInt32BE(i + 1) - 4;
        i += 5;
      } else {
        this.#head ??= Buffer.alloc(5);
        const head = this.#head;
        while (this.#headLen < 5 && i < end) head[this.#headLen++] = chunk[i++] as number;
        if (this.#headLen < 5) {
          // The header is cut by the chunk's end: hold its bytes back until the next chunk decides.
          if (headerStart > keptFrom) out.push(chunk.subarray(keptFrom, headerStart));
          this.#carried = this.#carried
            ? Buffer.concat([this.#carried, chunk.subarray(headerStart, end)])
            : chunk.subarray(headerStart, end);
          keptFrom = end;
          sliced = true;
          break;
        }
        code = head[0] as number;
        this.#remaining = head.readInt32BE(1) - 4;
        this.#headLen = 0;
      }
      const kept = keep(code);
      if (this.#carried) {
        if (kept) out.push(this.#carried);
        this.#carried = undefined;
        sliced = true;
      }
      if (!kept) {
        if (headerStart > keptFrom) out.push(chunk.subarray(keptFrom, headerStart));
        keptFrom = i;
        sliced = true;
      }
      this.#dropping = !kept && this.#remaining > 0;
      this.#inReady = code === BackendMessage.ReadyForQuery && this.#remaining > 0;
      if (kept && onStatus && code === BackendMessage.ParameterStatus && this.#remaining > 0)
        this.#status = [];
    }
    if (!sliced) return [chunk];
    if (keptFrom < end) out.push(chunk.subarray(keptFrom, end));
    return out;
  }

  /** True between messages. */
  get atBoundary(): boolean {
    return this.#remaining === 0 && this.#headLen === 0;
  }
}
