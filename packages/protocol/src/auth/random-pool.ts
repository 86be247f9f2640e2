import { randomBytes, randomFillSync } from "node:crypto";

/**
 * Cryptographically strong random bytes, drawn from a block that is refilled from the OS when used up.
 * One `getrandom` per block instead of one per draw: a gateway that authenticates hundreds of clients
 * per second needs a nonce and a cancel key for each, and a synchronous `randomBytes` call costs ~10 µs
 * with cold caches. Node's `randomUUID` caches entropy the same way. Every byte is handed out once.
 */
export class RandomPool {
  readonly #block: Buffer;
  #offset: number;

  /** `blockBytes`: how many bytes one refill draws, 64…65536 (default 4096). */
  constructor(blockBytes = 4096) {
    if (!Number.isInteger(blockBytes) || blockBytes < 64 || blockBytes > 65536) {
      throw new RangeError(`blockBytes must be an integer in 64…65536, got ${blockBytes}`);
    }
    this.#block = Buffer.allocUnsafeSlow(blockBytes);
    this.#offset = blockBytes;
  }

  /** `count` fresh random bytes, in a Buffer of their own. */
  bytes(count: number): Buffer {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`count must be a non-negative integer, got ${count}`);
    }
    if (count > this.#block.length >> 2) return randomBytes(count);
    if (this.#offset + count > this.#block.length) {
      randomFillSync(this.#block);
      this.#offset = 0;
    }
    const out = Buffer.allocUnsafe(count);
    this.#block.copy(out, 0, this.#offset, this.#offset + count);
    // Spent bytes are zeroed so that nothing later can read them back from the block.
    this.#block.fill(0, this.#offset, this.#offset + count);
    this.#offset += count;
    return out;
  }

  /** A uniformly random integer in 1…2³¹−1, as PostgreSQL's process ids and cancel keys are. */
  positiveInt32(): number {
    for (;;) {
      const value = this.bytes(4).readUInt32BE(0) & 0x7fffffff;
      if (value !== 0) return value;
    }
  }
}
