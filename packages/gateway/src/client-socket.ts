import net from "node:net";

/** Where client sockets read into; see `connectTcp` in origin-socket.ts for why one buffer serves all. */
const READ_SCRATCH = Buffer.allocUnsafe(64 * 1024);

/**
 * Re-wraps an accepted connection (from a server with `pauseOnConnect`) so it reads through `onread`
 * into {@link READ_SCRATCH}, re-emitting an exact-size copy as `'data'`: the Readable path's 64 KiB
 * allocation, push and tick per read are skipped on the hot path, as for origin sockets. Node offers
 * `onread` only to sockets it creates from a handle, so the handle moves to a new `net.Socket` and the
 * accepted one is retired without closing it.
 */
export function adoptClientSocket(accepted: net.Socket): net.Socket {
  const holder = accepted as unknown as { _handle: unknown };
  const handle = holder._handle;
  if (!handle) {
    accepted.resume();
    return accepted;
  }
  holder._handle = null;
  // With no handle, destroy() only retires the object (and the server's connection count).
  accepted.destroy();
  const socket: net.Socket = new net.Socket({
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: READ_SCRATCH,
      callback: (length: number, buffer: Uint8Array): boolean => {
        socket.emit("data", Buffer.from(buffer.subarray(0, length)));
        return true;
      },
    },
  } as net.SocketConstructorOpts);
  return socket;
}
