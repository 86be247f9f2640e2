import { PgBindError } from "./errors.js";
import { delay } from "./retry.js";

/** SSLRequest: length 8, code 1234.5679 (protocol docs, "SSLRequest"). */
const SSL_REQUEST = new Uint8Array([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const SSL_ACCEPTED = 0x53; // S

interface NetSocket {
  once(event: "connect", listener: () => void): unknown;
  once(event: "data", listener: (data: Uint8Array) => void): unknown;
  once(event: "error", listener: (error: Error) => void): unknown;
  once(event: "close", listener: () => void): unknown;
  write(data: Uint8Array): boolean;
  setTimeout(ms: number, listener: () => void): unknown;
  destroy(): void;
}
interface NetModule {
  connect(options: { host: string; port: number }): NetSocket;
}

/**
 * Settles `sslmode=prefer` the way libpq does, before the driver connects: asks the server with an
 * SSLRequest whether it speaks TLS. `true` means use TLS (without verification, as prefer does),
 * `false` means the server declined and plaintext is what prefer allows. Retries until `timeoutMs`
 * so a database that is still waking up (an auto-paused Aurora) does not fail the caller.
 */
export async function probeServerTls(
  bindingName: string,
  host: string,
  port: number,
  timeoutMs: number,
): Promise<boolean> {
  let net: NetModule;
  try {
    const specifier = "node:net";
    net = (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)) as NetModule;
  } catch {
    // No raw TCP sockets here (an edge runtime): try TLS, which any managed server offers.
    return true;
  }
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (let attempt = 0; ; attempt++) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      return await askOnce(net, host, port, Math.min(remaining, 5_000));
    } catch (error) {
      lastError = error;
    }
    const wait = Math.min(2_000, 100 * 2 ** attempt, Math.max(0, deadline - Date.now()));
    if (wait <= 0) break;
    await delay(wait);
  }
  throw new PgBindError(
    "DATABASE_UNREACHABLE",
    `binding "${bindingName}" uses sslmode=prefer, so pgbind asks ${host}:${port} whether it offers TLS, and it could not be reached within ${timeoutMs} ms (${describe(lastError)})`,
    { bindingName, cause: lastError },
  );
}

function askOnce(net: NetModule, host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let settled = false;
    const finish = (result: boolean | Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`no answer within ${timeoutMs} ms`)));
    socket.once("error", (error) => finish(error));
    socket.once("close", () => finish(new Error("connection closed before the server answered")));
    socket.once("connect", () => socket.write(SSL_REQUEST));
    socket.once("data", (data) => finish(data[0] === SSL_ACCEPTED));
  });
}

function describe(error: unknown): string {
  if (error instanceof Error) return (error as { code?: string }).code ?? error.message;
  return String(error);
}
