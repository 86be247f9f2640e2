import { promises as fs } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { getRequestListener } from "@hono/node-server";
import pg from "pg";
import { type ControlLog, createApi } from "./api.js";
import { type EmbeddedStore, startEmbeddedStore } from "./embedded-store.js";
import { ControlError } from "./errors.js";
import { parseGatewayUrl } from "./gateway-url.js";
import type { OriginProbe } from "./origin-probe.js";
import { Registry } from "./registry.js";
import { loadMasterKey } from "./secret-box.js";
import { describeStore, scrub, urlPassword } from "./store-url.js";

/** A pino logger, or anything with the same level methods. */
export interface PinoLike {
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

export interface ControlPlaneOptions {
  /** Where the HTTP API listens, default 127.0.0.1:8788; port 0 picks a free one. A `"host:port"` string works too. */
  readonly listen?: { readonly host: string; readonly port: number } | string;
  /** The registry's PostgreSQL URL. Without it, an embedded PostgreSQL keeps its data in `<dataDir>/postgres`. */
  readonly store?: string;
  /** State: `control.json`, `token`, `master.key`, the embedded store. Created if missing. */
  readonly dataDir: string;
  /** 32 bytes; else `PGBIND_MASTER_KEY`, else `<dataDir>/master.key` (created for an embedded store). */
  readonly masterKey?: Uint8Array;
  /** Where clients reach the gateway, e.g. `postgres://127.0.0.1:6432?sslmode=require`. */
  readonly gatewayUrl?: string;
  readonly log?: PinoLike | ControlLog;
  /** Tries origins at create/update; `false` skips it (default: connect with a 5 s budget). */
  readonly probe?: OriginProbe | false;
  /** How long to keep retrying an unreachable store at start, default 30 s. */
  readonly storeTimeoutMs?: number;
}

/** A running control plane. */
export interface ControlPlane {
  /** `http://host:port` of the API. */
  readonly url: string;
  /** The registry store's URL, for `pgbind gateway --store`. Holds its password: never log it. */
  readonly storeUrl: string;
  /** The API token, only when this start created it (it is in `tokenFile` too); undefined otherwise. */
  readonly token: string | undefined;
  /** `<dataDir>/token` (absent when the token was created by another instance on the same store). */
  readonly tokenFile: string;
  readonly registry: Registry;
  /** Stops the HTTP server, the store connections and the embedded PostgreSQL. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_LISTEN = { host: "127.0.0.1", port: 8788 };

/**
 * Starts the control plane: the store (embedded unless `store` is given), migrations, the master key
 * check, the API token (created on first start, saved in `<dataDir>/token`), and the HTTP API. Writes
 * `<dataDir>/control.json` `{url, pid, tokenFile}` for local discovery.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = toLog(options.log);
  const listen = parseListen(options.listen);
  // Bad options fail before anything starts.
  if (options.gatewayUrl !== undefined) parseGatewayUrl(options.gatewayUrl);
  const dataDir = path.resolve(options.dataDir);
  // As root the embedded server runs as `postgres`, which must traverse the data dir (0711 lists nothing).
  await fs.mkdir(dataDir, { recursive: true, mode: process.getuid?.() === 0 ? 0o711 : 0o700 });
  const masterKey = await loadMasterKey({
    ...(options.masterKey ? { masterKey: options.masterKey } : {}),
    dataDir,
    create: options.store === undefined,
  });

  const cleanups: (() => Promise<unknown>)[] = [];
  // The HTTP server closes first, so no request runs against a store being shut down.
  let closeServer: (() => Promise<void>) | undefined;
  const cleanup = async () => {
    const steps = [...(closeServer ? [closeServer] : []), ...cleanups.splice(0).reverse()];
    closeServer = undefined;
    for (const step of steps) await step().catch(() => {});
  };
  try {
    // Listen first: a taken port fails the start at once, before a database starts or a token is minted.
    let handler: http.RequestListener = (_request, response) => {
      response.writeHead(503, { "Content-Type": "application/json", "Retry-After": "1" });
      response.end(
        JSON.stringify(new ControlError("STORE_UNAVAILABLE", "the control plane is starting").toJSON()),
      );
    };
    const server = http.createServer((request, response) => handler(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen.port, listen.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    closeServer = () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    const url = `http://${urlHost(listen.host)}:${(server.address() as net.AddressInfo).port}`;

    let embedded: EmbeddedStore | undefined;
    if (options.store === undefined) {
      embedded = await startEmbeddedStore(dataDir, log);
      cleanups.push(() => (embedded as EmbeddedStore).stop());
    }
    const storeUrl = options.store ?? (embedded as EmbeddedStore).url;
    const storeName = describeStore(storeUrl);
    const secret = urlPassword(storeUrl);
    const pool = new pg.Pool({ connectionString: storeUrl, max: 10, connectionTimeoutMillis: 10_000 });
    pool.on("error", (error) =>
      log("store_connection_error", { store: storeName, error: scrub(error.message, secret) }),
    );
    cleanups.push(() => pool.end());
    const registry = new Registry({
      pool,
      masterKey,
      storeName,
      ...(options.probe !== undefined ? { probe: options.probe } : {}),
    });

    const applied = await untilReachable(() => registry.migrate(), options.storeTimeoutMs ?? 30_000);
    if (applied.length > 0) log("store_migrated", { store: storeName, versions: applied });
    await registry.verifyMasterKey({ record: true });
    const tokenFile = path.join(dataDir, "token");
    const token = await registry.ensureApiToken((value) => writePrivate(tokenFile, `${value}\n`));

    const app = createApi(registry, {
      log,
      ...(options.gatewayUrl !== undefined ? { gatewayUrl: options.gatewayUrl } : {}),
    });
    handler = getRequestListener(app.fetch);
    const controlFile = path.join(dataDir, "control.json");
    await writePrivate(controlFile, `${JSON.stringify({ url, pid: process.pid, tokenFile }, null, 2)}\n`);
    cleanups.push(() => removeIfOurs(controlFile));
    log("control_started", {
      url,
      store: storeName,
      embedded: embedded !== undefined,
      tokenCreated: token !== undefined,
    });

    let closing: Promise<void> | undefined;
    return {
      url,
      storeUrl,
      token,
      tokenFile,
      registry,
      close: () => {
        closing ??= cleanup().then(() => log("control_stopped", { url }));
        return closing;
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** Retries `work` while the store is unavailable (a database starting next to us), up to `budgetMs`. */
async function untilReachable<T>(work: () => Promise<T>, budgetMs: number): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      return await work();
    } catch (error) {
      const retry = error instanceof ControlError && error.retryable && Date.now() + delay < deadline;
      if (!retry) throw error;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

function parseListen(listen: ControlPlaneOptions["listen"]): { host: string; port: number } {
  if (listen === undefined) return DEFAULT_LISTEN;
  const parsed =
    typeof listen === "string"
      ? (() => {
          const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
          return match ? { host: match[1] ?? match[2] ?? "", port: Number(match[3]) } : undefined;
        })()
      : listen;
  if (
    !parsed ||
    parsed.host === "" ||
    !Number.isInteger(parsed.port) ||
    parsed.port < 0 ||
    parsed.port > 65535
  ) {
    throw new ControlError(
      "INVALID_OPTIONS",
      `listen must be a host and a port from 0 to 65535 (0 picks a free one), e.g. 127.0.0.1:8788`,
    );
  }
  return parsed;
}

function urlHost(host: string): string {
  // An unspecified address accepts loopback connections: discovery on this machine goes there.
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return net.isIPv6(host) ? `[${host}]` : host;
}

/** Writes a file only the owner can read (also when it existed with a wider mode). */
async function writePrivate(file: string, content: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(temp, content, { mode: 0o600 });
  await fs.chmod(temp, 0o600);
  await fs.rename(temp, file);
}

async function removeIfOurs(file: string): Promise<void> {
  const text = await fs.readFile(file, "utf8").catch(() => "");
  if ((JSON.parse(text || "{}") as { pid?: unknown }).pid === process.pid) await fs.rm(file, { force: true });
}

function toLog(log: ControlPlaneOptions["log"]): ControlLog {
  if (log === undefined) return () => {};
  if (typeof log === "function") return log;
  return (event, fields) => {
    const level = /failed|error/.test(event) ? "error" : "info";
    log[level]({ event, ...fields }, event);
  };
}
