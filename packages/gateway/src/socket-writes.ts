import type net from "node:net";
import { NativeSocket, type RelaySocket } from "./native-sockets.js";

type StreamWrite = (chunk: Buffer, encoding: string, done: (error?: Error | null) => void) => void;

/**
 * Writes to a socket through its stream handle directly (`_write`, the method `Writable` itself calls)
 * while the `Writable` has nothing buffered, instead of `socket.write()`. Almost every gateway write
 * completes at once in the kernel, and for those the `Writable` bookkeeping (state checks, length
 * accounting, a `process.nextTick` per write for its after-write step) is most of Node's cost per write.
 *
 * Order is kept: libuv queues a write behind any still pending on the same handle, whichever path it
 * came from. Backpressure keeps its meaning: `write()` returns false when the kernel did not take
 * everything at once, and the socket emits `'drain'` when the last such write completes.
 */
export class SocketWriter {
  readonly socket: net.Socket;
  #pending = 0;
  #needDrain = false;
  readonly #write: StreamWrite | undefined;
  readonly #written = (error?: Error | null): void => {
    this.#pending--;
    if (error) {
      this.socket.destroy(error);
      return;
    }
    if (this.#pending === 0 && this.#needDrain) {
      this.#needDrain = false;
      this.socket.emit("drain");
    }
  };

  constructor(socket: net.Socket) {
    this.socket = socket;
    const write = (socket as unknown as { _write?: StreamWrite })._write;
    // A TLS socket encrypts in its own layer: it keeps the ordinary path.
    this.#write =
      typeof write === "function" && !(socket as { encrypted?: boolean }).encrypted ? write : undefined;
  }

  /** Writes `data`; false means "wait for `'drain'`", as `socket.write()`. */
  write(data: Buffer): boolean {
    const socket = this.socket;
    const write = this.#write;
    if (
      write === undefined ||
      socket.writableLength > 0 ||
      socket.writableCorked > 0 ||
      socket.connecting ||
      !socket.writable
    ) {
      return socket.write(data);
    }
    this.#pending++;
    write.call(socket, data, "buffer", this.#written);
    if (this.#pending === 0) return true;
    this.#needDrain = true;
    return false;
  }
}

/** Where relayed bytes are written: `write()` false means "wait for `'drain'`". */
export interface RelayWriter {
  write(data: Buffer): boolean;
}

/** The cheapest way to write to `socket`: a native socket writes directly already. */
export function relayWriter(socket: RelaySocket): RelayWriter {
  return socket instanceof NativeSocket ? socket : new SocketWriter(socket as net.Socket);
}
