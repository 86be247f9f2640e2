import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import net from "node:net";
import { getSystemErrorName } from "node:util";

/**
 * What the gateway needs of a connection's socket: Node's `net.Socket` has it, and so does
 * {@link NativeSocket}.
 */
export interface RelaySocket {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly destroyed: boolean;
  readonly writable: boolean;
  write(data: Buffer | string): boolean;
  end(): unknown;
  end(data: Buffer): unknown;
  destroy(error?: Error): unknown;
  destroySoon?(): void;
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
  setNoDelay(noDelay?: boolean): unknown;
  cork(): void;
  uncork(): void;
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  on(event: "close" | "drain" | "end", listener: () => void): unknown;
  once(event: "error", listener: (error: Error) => void): unknown;
  once(event: "close" | "drain" | "end", listener: () => void): unknown;
  removeListener(event: "data", listener: (chunk: Buffer) => void): unknown;
  removeListener(event: "error", listener: (error: Error) => void): unknown;
  removeListener(event: "close" | "drain" | "end", listener: () => void): unknown;
  removeAllListeners(event?: string): unknown;
}

/** The addon's functions (native/socket_io.c). */
interface SocketIoAddon {
  start(onEvents: (count: number) => void, maxEvents?: number): [Buffer, Int32Array];
  adopt(fd: number): number;
  listen(fd: number): number;
  peer(id: number): [string, number] | undefined;
  readStart(id: number): number;
  readStop(id: number): number;
  /** undefined: written; 1: queued (a drain event follows); negative: an errno. */
  write(id: number, data: Buffer): number | undefined;
  end(id: number): number;
  close(id: number): number;
  release(id: number): number;
  forget(id: number): void;
}

/** Event kinds in the addon's event list, four int32 each: kind, id, a, b. */
const SocketEvent = { Data: 1, End: 2, Drain: 3, Close: 4, Accept: 5 } as const;
const UV_EOF = -4095;

function errnoError(code: number, syscall: string): NodeJS.ErrnoException {
  const name = getSystemErrorName(code);
  const error: NodeJS.ErrnoException = new Error(`${syscall} ${name}`);
  error.code = name;
  error.errno = code;
  error.syscall = syscall;
  return error;
}

/**
 * A TCP connection served by the native socket layer. Behaves as the parts of `net.Socket` the gateway
 * uses: `'data'` (a Buffer the listener may keep), `'end'`, `'drain'`, `'error'`, `'close'`;
 * `write()` returns false when the kernel did not take everything (then `'drain'`); the other side
 * ending closes it (no half-open connections, as `net.Socket`'s default).
 */
export class NativeSocket extends EventEmitter implements RelaySocket {
  /** The peer's address and port: given at adoption, asked of the kernel on first use when accepted. */
  #peer: readonly [string | undefined, number | undefined] | undefined;
  readonly #layer: NativeSocketLayer;
  readonly #addon: SocketIoAddon;
  readonly #id: number;
  #destroyed = false;
  #ending = false;
  #paused = false;
  #needDrain = false;

  /** Use {@link NativeSocketLayer.adopt}. @internal */
  constructor(layer: NativeSocketLayer, addon: SocketIoAddon, id: number, from?: net.Socket) {
    super();
    this.#layer = layer;
    this.#addon = addon;
    this.#id = id;
    if (from) this.#peer = [from.remoteAddress, from.remotePort];
  }

  get remoteAddress(): string | undefined {
    return this.#remote()[0];
  }

  get remotePort(): number | undefined {
    return this.#remote()[1];
  }

  #remote(): readonly [string | undefined, number | undefined] {
    if (this.#peer === undefined) {
      const peer = this.#destroyed ? undefined : this.#addon.peer(this.#id);
      // Unknown once closed; asked again never (the answer cannot improve).
      this.#peer = peer ?? [undefined, undefined];
    }
    return this.#peer;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  get writable(): boolean {
    return !this.#destroyed && !this.#ending;
  }

  write(data: Buffer | string): boolean {
    if (!this.writable) return false;
    const result = this.#addon.write(this.#id, typeof data === "string" ? Buffer.from(data) : data);
    if (result === undefined) return true;
    if (result === 1) {
      this.#needDrain = true;
      return false;
    }
    this.destroy(errnoError(result, "write"));
    return false;
  }

  /** Sends `data`, then shuts down the sending side once everything queued is out, then closes. */
  end(data?: Buffer): this {
    if (data) this.write(data);
    if (!this.writable) return this;
    this.#ending = true;
    this.#addon.end(this.#id);
    return this;
  }

  destroySoon(): void {
    this.end();
  }

  destroy(error?: Error): this {
    if (this.#destroyed) return this;
    this.#destroyed = true;
    // The layer reports no close for a connection closed from here: 'close' is emitted here, after
    // 'error', on the next tick as net.Socket does.
    this.#addon.close(this.#id);
    this.#layer.stopEvents(this.#id);
    process.nextTick(() => {
      if (error) this.emit("error", error);
      this.emit("close", error !== undefined);
    });
    return this;
  }

  pause(): this {
    if (!this.#paused && !this.#destroyed) this.#addon.readStop(this.#id);
    this.#paused = true;
    return this;
  }

  resume(): this {
    if (this.#paused && !this.#destroyed) this.#addon.readStart(this.#id);
    this.#paused = false;
    return this;
  }

  isPaused(): boolean {
    return this.#paused;
  }

  /** Nagle is off from adoption on. */
  setNoDelay(): this {
    return this;
  }

  /** Writes are not corked: each goes to the kernel (or the queue behind it) in order. */
  cork(): void {}

  uncork(): void {}

  /**
   * Hands the connection back to Node as a `net.Socket` (to start TLS on it, say). This object is
   * finished afterwards, without a `'close'` event.
   */
  release(): net.Socket {
    const fd = this.#addon.release(this.#id);
    if (fd < 0) throw errnoError(fd, "release");
    this.#destroyed = true;
    this.#layer.stopEvents(this.#id);
    const socket = new net.Socket({ fd, readable: true, writable: true });
    // Whoever watched this connection close still learns when it does.
    socket.once("close", () => this.emit("close", false));
    return socket;
  }

  /** @internal */
  onEnd(code: number): void {
    if (code !== UV_EOF) {
      this.destroy(errnoError(code, "read"));
      return;
    }
    this.emit("end");
    // As net.Socket without allowHalfOpen: the other side is done, so are we.
    if (!this.#destroyed) this.end();
  }

  /** @internal */
  onDrain(status: number): void {
    if (status < 0) {
      this.destroy(errnoError(status, "write"));
      return;
    }
    if (this.#needDrain && !this.#destroyed) {
      this.#needDrain = false;
      this.emit("drain");
    }
  }

  /** @internal */
  onClose(): void {
    this.#destroyed = true;
    this.emit("close", false);
  }
}

/**
 * The native socket layer of this Node environment (the addon keeps one arena and one event list per
 * environment, so this is one object per process or worker).
 */
export class NativeSocketLayer {
  readonly #addon: SocketIoAddon;
  readonly #sockets = new Map<number, NativeSocket>();
  readonly #listeners = new Map<number, NativeListener>();
  readonly #arena: Buffer;
  readonly #events: Int32Array;

  /**
   * One per Node environment (process or worker thread): see {@link nativeSocketLayer}. `maxEvents`
   * bounds one delivery's event list (default 16384); a loop iteration with more delivers early.
   */
  constructor(addon: SocketIoAddon, options: { readonly maxEvents?: number } = {}) {
    this.#addon = addon;
    [this.#arena, this.#events] = addon.start((count) => this.#dispatch(count), options.maxEvents);
  }

  /**
   * Moves a connected plain TCP socket to the native layer: the new socket serves a duplicate of its
   * descriptor and `socket` is destroyed. Returns undefined (and leaves `socket` alone) for a socket
   * that cannot move: TLS, not connected, or with bytes still queued.
   */
  adopt(socket: net.Socket): NativeSocket | undefined {
    if ((socket as { encrypted?: boolean }).encrypted || socket.writableLength > 0) return undefined;
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== "number" || fd < 0) return undefined;
    const id = this.#addon.adopt(fd);
    if (id <= 0) return undefined;
    const adopted = new NativeSocket(this, this.#addon, id, socket);
    this.#sockets.set(id, adopted);
    socket.destroy();
    this.#addon.readStart(id);
    return adopted;
  }

  /**
   * Takes over a listening `server`: connections are accepted natively from now on (no `net.Socket`
   * is made for them) and handed to `onSocket`, reading. `server` is closed; its socket stays open
   * through the listener. Returns undefined (and leaves `server` alone) where that cannot be done.
   */
  listen(
    server: net.Server,
    onSocket: (socket: NativeSocket) => void,
    onError: (error: NodeJS.ErrnoException) => void,
  ): NativeListener | undefined {
    const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (!server.listening || typeof fd !== "number" || fd < 0) return undefined;
    const id = this.#addon.listen(fd);
    if (id <= 0) return undefined;
    const listener = new NativeListener(id, this.#addon, onSocket, onError, () => this.#listeners.delete(id));
    this.#listeners.set(id, listener);
    server.close();
    return listener;
  }

  /** Events still listed for a connection closed or released from JavaScript are dropped. @internal */
  stopEvents(id: number): void {
    this.#sockets.delete(id);
  }

  #accept(listenerId: number, result: number): void {
    const listener = this.#listeners.get(listenerId);
    if (result <= 0) {
      listener?.onError(errnoError(result, "accept"));
      return;
    }
    if (listener === undefined) {
      // Accepted in the same turn as the listener closed: nobody takes it.
      this.#addon.close(result);
      return;
    }
    const socket = new NativeSocket(this, this.#addon, result);
    this.#sockets.set(result, socket);
    listener.onSocket(socket);
  }

  #dispatch(count: number): void {
    const events = this.#events;
    let failure: unknown;
    for (let at = 0; at < count * 4; at += 4) {
      const id = events[at + 1] as number;
      const kind = events[at];
      // One listener's exception must not lose the rest of the batch (other clients' bytes); it is
      // rethrown after, as an uncaught exception, as it would be from a net.Socket listener.
      if (kind === SocketEvent.Accept) {
        try {
          this.#accept(id, events[at + 2] as number);
        } catch (error) {
          failure ??= error;
        }
        continue;
      }
      const socket = this.#sockets.get(id);
      if (socket === undefined) continue;
      try {
        switch (kind) {
          case SocketEvent.Data: {
            const offset = events[at + 2] as number;
            const length = events[at + 3] as number;
            // The arena is reused once this batch returns: listeners get their own copy.
            const chunk = Buffer.allocUnsafe(length);
            this.#arena.copy(chunk, 0, offset, offset + length);
            if (!socket.destroyed) socket.emit("data", chunk);
            break;
          }
          case SocketEvent.End:
            socket.onEnd(events[at + 2] as number);
            break;
          case SocketEvent.Drain:
            socket.onDrain(events[at + 2] as number);
            break;
          case SocketEvent.Close:
            this.#sockets.delete(id);
            this.#addon.forget(id);
            socket.onClose();
            break;
        }
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) {
      process.nextTick(() => {
        throw failure;
      });
    }
  }
}

/** A listening socket served by the native layer (see {@link NativeSocketLayer.listen}). */
export class NativeListener {
  readonly #id: number;
  readonly #addon: SocketIoAddon;
  readonly #forget: () => void;
  #closed = false;
  /** @internal */
  readonly onSocket: (socket: NativeSocket) => void;
  /** @internal */
  readonly onError: (error: NodeJS.ErrnoException) => void;

  /** Use {@link NativeSocketLayer.listen}. @internal */
  constructor(
    id: number,
    addon: SocketIoAddon,
    onSocket: (socket: NativeSocket) => void,
    onError: (error: NodeJS.ErrnoException) => void,
    forget: () => void,
  ) {
    this.#id = id;
    this.#addon = addon;
    this.onSocket = onSocket;
    this.onError = onError;
    this.#forget = forget;
  }

  /** Stops accepting and closes the listening socket; connections already accepted stay open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#forget();
    this.#addon.close(this.#id);
  }
}

let layer: NativeSocketLayer | null | undefined;

/**
 * The native socket layer, or undefined where it is not built (no C compiler at install) or turned off
 * with `PGBIND_GATEWAY_SOCKETS=node`. Loaded on first use.
 */
export function nativeSocketLayer(): NativeSocketLayer | undefined {
  if (layer === undefined) {
    layer = null;
    if (process.env.PGBIND_GATEWAY_SOCKETS !== "node" && process.platform !== "win32") {
      try {
        const require = createRequire(import.meta.url);
        const addon = require("../native/build/Release/pgbind_socket_io.node") as SocketIoAddon;
        layer = new NativeSocketLayer(addon);
      } catch {
        layer = null;
      }
    }
  }
  return layer ?? undefined;
}
