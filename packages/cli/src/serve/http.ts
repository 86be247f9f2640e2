import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";

const INTERNAL_ERROR = "Internal Server Error";
/** Framing and connection management belong to Node's HTTP server, not to the handler's Response. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "set-cookie"]);
const HOST_HEADER = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * Converts a Node request into a WHATWG `Request`: the URL uses the Host header the client sent
 * (`fallbackAuthority` when it has none or an odd one), the body streams from the socket, and the
 * signal aborts when the client disconnects before the response is complete.
 */
export function toRequest(req: IncomingMessage, res: ServerResponse, fallbackAuthority: string): Request {
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort(new Error("the client disconnected"));
  });
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string);
  }
  const host = req.headers.host;
  const authority = host !== undefined && HOST_HEADER.test(host) ? host : fallbackAuthority;
  const method = req.method ?? "GET";
  const init: RequestInit = { method, headers, signal: controller.signal };
  if (method !== "GET" && method !== "HEAD" && hasBody(req)) {
    init.body = Readable.toWeb(req) as ReadableStream<Uint8Array>;
    init.duplex = "half";
  }
  return new Request(`http://${authority}${requestPath(req.url)}`, init);
}

/** Keeps the path relative to our origin, even for `//other.host/…` or absolute-form targets. */
function requestPath(target: string | undefined): string {
  if (target === undefined || target === "*") return "/";
  if (target.startsWith("/")) return target;
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return "/";
  }
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

/**
 * Writes `response` to `res`, streaming the body chunk by chunk: waits for `drain` whenever the socket
 * buffer is full, and cancels the body stream if the client goes away. Throws when the body stream
 * fails; the caller answers 500 if nothing was sent yet, or cuts the connection.
 */
export async function writeResponse(
  req: IncomingMessage,
  res: ServerResponse,
  response: Response,
  closing: boolean,
): Promise<void> {
  res.statusCode = response.status;
  if (response.statusText !== "") res.statusMessage = response.statusText;
  for (const [name, value] of response.headers) if (!HOP_BY_HOP.has(name)) res.setHeader(name, value);
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  if (closing) res.setHeader("connection", "close");

  const body = response.body;
  const bodyless = req.method === "HEAD" || response.status === 204 || response.status === 304;
  if (body === null || bodyless) {
    await body?.cancel().catch(() => undefined);
    res.end();
    return;
  }
  const reader = body.getReader();
  const cancel = () => {
    reader.cancel().catch(() => undefined);
  };
  res.once("close", cancel);
  try {
    for (;;) {
      if (res.destroyed) {
        // The client went away (possibly before we started): tell the producer to stop.
        cancel();
        break;
      }
      const { done, value } = await reader.read();
      if (done) break;
      if (!(value instanceof Uint8Array)) {
        throw new TypeError(
          `the response body stream produced ${typeof value === "string" ? "a string" : `a ${typeof value}`}; enqueue Uint8Array chunks (e.g. new TextEncoder().encode(text))`,
        );
      }
      if (!res.destroyed && !res.write(value)) await drained(res);
    }
  } catch (error) {
    cancel();
    throw error;
  } finally {
    res.off("close", cancel);
  }
  if (!res.destroyed) res.end();
}

/** Answers 500 with a fixed body: an error's message may contain secrets, so none of it is sent. */
export function sendInternalError(res: ServerResponse): void {
  if (res.headersSent || res.destroyed) {
    // Part of the body is out; cutting the connection is the only way to signal the failure.
    res.destroy();
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  res.writeHead(500, INTERNAL_ERROR, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(INTERNAL_ERROR),
  });
  res.end(INTERNAL_ERROR);
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed || !res.writableNeedDrain) {
      resolve();
      return;
    }
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
