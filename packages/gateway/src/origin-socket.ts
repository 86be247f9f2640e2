import net from "node:net";
import tls from "node:tls";
import type { OriginConfig } from "./config.js";
import { scratchReads } from "./socket-reads.js";

/** SSLRequest: length 8, then the code 80877103 (protocol docs, "SSLRequest"). */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const SSL_YES = 0x53; // S
const SSL_NO = 0x4e; // N

/** A failure to reach the origin; `retryable` says whether trying again may help. */
export class OriginConnectError extends Error {
  readonly retryable: boolean;
  /** The origin's SQLSTATE when it answered with an ErrorResponse. */
  readonly sqlstate: string | undefined;
  constructor(message: string, retryable: boolean, options?: { cause?: unknown; sqlstate?: string }) {
    super(message, options);
    this.name = "OriginConnectError";
    this.retryable = retryable;
    this.sqlstate = options?.sqlstate;
  }
}

/** Network errors that mean "not there yet" (an origin restarting or waking from auto-pause). */
const TRANSIENT = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "EPIPE",
]);

/**
 * Opens a TCP connection with a timeout; keepalive on, Nagle off (small protocol messages), reads through
 * {@link scratchReads}.
 */
export function connectTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket: net.Socket = net.connect({
      host,
      port,
      noDelay: true,
      keepAlive: true,
      onread: scratchReads(() => socket),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new OriginConnectError(`connecting to ${host}:${port} timed out after ${timeoutMs} ms`, true));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (cause: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = cause.code ?? "";
      reject(
        new OriginConnectError(
          `cannot connect to ${host}:${port}: ${code || cause.message}`,
          TRANSIENT.has(code),
          { cause },
        ),
      );
    });
  });
}

/**
 * Negotiates TLS with the origin per sslmode, as libpq does: SSLRequest, then a TLS handshake on
 * `S`; on `N`, plaintext only for `prefer`. Anything after the `S` byte and before the handshake is
 * refused (CVE-2021-23222: a man in the middle injecting plaintext responses).
 */
export async function negotiateOriginTls(
  socket: net.Socket,
  origin: OriginConfig,
  timeoutMs: number,
): Promise<net.Socket> {
  if (origin.sslmode === "disable") return socket;
  socket.write(SSL_REQUEST);
  const answer = await readSslAnswer(socket, timeoutMs);
  if (answer === SSL_NO) {
    if (origin.sslmode === "prefer") return socket;
    socket.destroy();
    throw new OriginConnectError(
      `the origin ${origin.host}:${origin.port} does not accept TLS, but sslmode is ${origin.sslmode}`,
      false,
    );
  }
  const verify = origin.sslmode === "verify-ca" || origin.sslmode === "verify-full";
  const options: tls.ConnectionOptions = {
    socket,
    // Without host, Node checks the certificate against "localhost" whatever was dialled.
    host: origin.host,
    rejectUnauthorized: verify,
    ...(origin.sslrootcert ? { ca: origin.sslrootcert } : {}),
    ...(net.isIP(origin.host) ? {} : { servername: origin.host }),
    ...(origin.sslmode === "verify-ca" ? { checkServerIdentity: () => undefined } : {}),
  };
  return new Promise((resolve, reject) => {
    const secure = tls.connect(options);
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new OriginConnectError(`TLS handshake with ${origin.host}:${origin.port} timed out`, true));
    }, timeoutMs);
    secure.once("secureConnect", () => {
      clearTimeout(timer);
      secure.removeAllListeners("error");
      resolve(secure);
    });
    secure.once("error", (cause: Error) => {
      clearTimeout(timer);
      reject(
        new OriginConnectError(
          `TLS with ${origin.host}:${origin.port} failed (sslmode ${origin.sslmode}): ${cause.message}`,
          false,
          {
            cause,
          },
        ),
      );
    });
  });
}

function readSslAnswer(socket: net.Socket, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new OriginConnectError("the origin did not answer the SSLRequest", true)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      if (chunk.length !== 1 || (chunk[0] !== SSL_YES && chunk[0] !== SSL_NO)) {
        fail(
          new OriginConnectError(
            chunk[0] === SSL_YES || chunk[0] === SSL_NO
              ? "the origin sent data before the TLS handshake; refusing it (possible man in the middle)"
              : "the origin answered the SSLRequest with something other than S or N; is it PostgreSQL?",
            false,
          ),
        );
        return;
      }
      cleanup();
      resolve(chunk[0]);
    };
    const onError = (cause: Error) =>
      fail(new OriginConnectError(`the origin closed the connection: ${cause.message}`, true, { cause }));
    const onClose = () =>
      fail(new OriginConnectError("the origin closed the connection during the SSLRequest", true));
    function cleanup() {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("error", onError);
      socket.removeListener("close", onClose);
    }
    function fail(error: Error) {
      cleanup();
      socket.destroy();
      reject(error);
    }
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("close", onClose);
  });
}

/** The last retry starts at least this long before the deadline, so it has time to succeed. */
const LAST_ATTEMPT_MS = 250;

/**
 * Retries `attempt` with capped exponential backoff (full jitter) while it fails retryably and the
 * total budget lasts: an origin that takes 20 s to come up must not fail a client willing to wait.
 * The budget is used to its end: a backoff that would overrun it is shortened to leave one last
 * attempt (giving up at the first long backoff instead failed clients up to 2 s, or half a short
 * budget, early).
 */
export async function withConnectRetry<T>(
  attempt: (remainingMs: number) => Promise<T>,
  totalMs: number,
): Promise<T> {
  const deadline = Date.now() + totalMs;
  for (let n = 0; ; n++) {
    const remaining = deadline - Date.now();
    try {
      return await attempt(Math.max(1, remaining));
    } catch (error) {
      const retryable = error instanceof OriginConnectError ? error.retryable : false;
      const left = deadline - Date.now();
      if (!retryable || left < LAST_ATTEMPT_MS) throw error;
      const wait = Math.min(Math.random() * Math.min(2_000, 100 * 2 ** n), left - LAST_ATTEMPT_MS);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
