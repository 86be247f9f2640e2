import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { inspect } from "node:util";
import { CliError } from "../errors.js";
import { redact } from "./bindings.js";
import { type ExecutionContext, type FetchHandler, loadHandler } from "./handler.js";
import { sendInternalError, toRequest, writeResponse } from "./http.js";
import { watchDirectory } from "./watch.js";

/** How long closing waits for in-flight requests, and then for `waitUntil` work, by default. */
export const DEFAULT_DRAIN_MS = 10_000;

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** Absolute path of the fetch-handler module. */
  readonly entry: string;
  /** The entry as the user wrote it, for messages; defaults to `entry`. */
  readonly display?: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** The handler's `env` (the manifest's bindings). */
  readonly env: Readonly<Record<string, unknown>>;
  /** Re-import the entry when a file in its directory changes. */
  readonly watch: boolean;
  /** Receives one message (possibly multi-line, no trailing newline) per event worth telling. */
  readonly log: (message: string) => void;
  /** Texts never to print (binding passwords and connection strings); replaced by `********`. */
  readonly secrets?: readonly string[];
  /** Bound for each closing phase (in-flight requests, then `waitUntil` work). */
  readonly drainMs?: number;
}

/** A running server. */
export interface RunningServer {
  /** `http://host:port`, with the port actually bound. */
  readonly url: string;
  /** Stops accepting, lets in-flight requests and `waitUntil` work finish (bounded), then closes. */
  close(): Promise<void>;
}

/**
 * Serves the fetch-handler module `entry` over HTTP on `host:port`: each request becomes a WHATWG
 * `Request` passed to `fetch(request, env, ctx)`, whose `Response` streams back. A handler that throws
 * yields a bare 500; the stack goes to `log` with secrets masked. Throws `ENTRY_NOT_FOUND`,
 * `ENTRY_INVALID`, or `COMMAND_FAILED` when the port cannot be bound.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { entry, env, log } = options;
  const display = options.display ?? entry;
  const secrets = options.secrets ?? [];
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  const scrub = (text: string) => redact(text, secrets);
  const describe = (error: unknown) => scrub(error instanceof CliError ? error.message : inspect(error));

  let generation = 0;
  let handler = await loadHandler(entry, display, generation, scrub);
  const inflight = new Set<Promise<void>>();
  const background = new Set<Promise<void>>();
  let closing = false;
  const ctx: ExecutionContext = {
    waitUntil(promise) {
      const task = Promise.resolve(promise).then(
        () => undefined,
        (error: unknown) => log(`a waitUntil task failed:\n${describe(error)}`),
      );
      background.add(task);
      void task.then(() => background.delete(task));
    },
    passThroughOnException() {},
  };

  const server: http.Server = http.createServer((req, res) => {
    const task = serve(req, res, handler).catch((error: unknown) => {
      log(`${req.method} ${req.url}: the response failed:\n${describe(error)}`);
      sendInternalError(res);
    });
    inflight.add(task);
    void task.then(() => inflight.delete(task));
  });
  // Set once listening; the Request URL falls back to it when the client sent no usable Host header.
  let origin = "";

  async function serve(req: http.IncomingMessage, res: http.ServerResponse, current: FetchHandler) {
    const request = toRequest(req, res, origin);
    let response: unknown;
    try {
      response = await current.fetch(request, env, ctx);
    } catch (error) {
      log(`${req.method} ${req.url}: the fetch handler threw:\n${describe(error)}`);
      sendInternalError(res);
      return;
    }
    if (!(response instanceof Response)) {
      log(
        `${req.method} ${req.url}: the fetch handler returned ${scrub(inspect(response, { depth: 0 }))}, not a Response`,
      );
      sendInternalError(res);
      return;
    }
    await writeResponse(req, res, response, closing);
  }

  await listen(server, options.host, options.port);
  origin = authority(options.host, (server.address() as AddressInfo).port);
  server.on("error", (error) => log(`server error: ${describe(error)}`));

  let reloading: Promise<void> | undefined;
  let reloadAgain = false;
  const reload = () => {
    if (reloading !== undefined) {
      reloadAgain = true;
      return;
    }
    reloading = (async () => {
      do {
        reloadAgain = false;
        try {
          // Requests already running keep the handler they started with.
          handler = await loadHandler(entry, display, ++generation, scrub);
          log(`reloaded ${display}`);
        } catch (error) {
          log(`${display} changed but did not load; still serving the previous version:\n${describe(error)}`);
        }
      } while (reloadAgain && !closing);
    })().finally(() => {
      reloading = undefined;
    });
  };
  const unwatch = options.watch ? watchDirectory(path.dirname(entry), reload) : () => undefined;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${origin}`,
    close() {
      closed ??= (async () => {
        closing = true;
        unwatch();
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (!(await settle(inflight, drainMs))) {
          log(
            `${inflight.size} request(s) still running after ${drainMs / 1000} s; closing their connections`,
          );
        }
        server.closeAllConnections();
        await stopped;
        await reloading;
        if (!(await settle(background, drainMs))) {
          log(
            `${background.size} waitUntil task(s) still running after ${drainMs / 1000} s; not waiting longer`,
          );
        }
      })();
      return closed;
    },
  };
}

function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(listenError(error, host, port));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

function listenError(error: NodeJS.ErrnoException, host: string, port: number): CliError {
  switch (error.code) {
    case "EADDRINUSE":
      return new CliError("COMMAND_FAILED", `port ${port} is in use; pass --port <n> (0 picks a free one)`, {
        cause: error,
      });
    case "EACCES":
      return new CliError(
        "COMMAND_FAILED",
        `not allowed to listen on port ${port}; pass --port <n> above 1023 (0 picks a free one)`,
        { cause: error },
      );
    case "EADDRNOTAVAIL":
      return new CliError(
        "COMMAND_FAILED",
        `cannot listen on "${host}": it is not an address of this machine`,
        {
          cause: error,
        },
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new CliError("COMMAND_FAILED", `cannot listen on "${host}": the host name does not resolve`, {
        cause: error,
      });
    default:
      return new CliError("COMMAND_FAILED", `cannot listen on ${host}:${port}: ${error.message}`, {
        cause: error,
      });
  }
}

function authority(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Waits until `tasks` (which may grow meanwhile) is empty; false if `ms` passed first. */
async function settle(tasks: ReadonlySet<Promise<void>>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (tasks.size > 0) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, left);
    });
    await Promise.race([Promise.all(tasks), timeout]);
    clearTimeout(timer);
  }
  return true;
}
