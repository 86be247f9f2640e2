import { access } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { CONTROL_FILE, DEFAULT_CONTROL_DIR } from "../control/discovery.js";
import { ORIGIN_SSL_MODES } from "../control/types.js";
import { CliError, EXIT } from "../errors.js";
import type { CliIo, Command } from "../io.js";
import { createLogger } from "../log.js";

export const CONTROL_USAGE =
  "pgbind control [--listen 127.0.0.1:8788] [--store postgres://…] [--data-dir .pgbind/control] [--gateway-url postgres://127.0.0.1:6432]";

const DEFAULT_LISTEN = "127.0.0.1:8788";
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** The full help of `pgbind control`, shown by `pgbind control --help`. */
export const CONTROL_HELP = `  --listen <host:port>     where the HTTP API listens (default ${DEFAULT_LISTEN}; port 0 picks a free one)
  --store <postgres://…>   the PostgreSQL that keeps the registry (schema pgbind); default: an embedded
                           one with its data in the data dir
  --data-dir <dir>         state: ${CONTROL_FILE}, the API token, the master key (default ${DEFAULT_CONTROL_DIR})
  --gateway-url <url>      where clients reach the gateway, e.g. postgres://gw.internal:6432?sslmode=require;
                           minted credentials then come with a connection string, and \`pgbind serve/run\`
                           can resolve manifest ids into gateway bindings

The API token is printed once, on the first start, and saved in <data-dir>/token (mode 0600).
Origin passwords are encrypted with the master key: PGBIND_MASTER_KEY (32 bytes, base64 or hex), else
<data-dir>/master.key. Logs go to stderr as JSON lines and never contain a secret.
Clients on this machine find the control plane through <data-dir>/${CONTROL_FILE}; elsewhere use
--control-url/--token or PGBIND_CONTROL_URL/PGBIND_TOKEN. The API is documented in docs/control-api.md.`;

/**
 * `pgbind control`: runs the control plane (registry of configs and credentials, HTTP API v1) until
 * SIGINT/SIGTERM, then closes it.
 */
export const controlCommand: Command = async (argv, io) => {
  const options = parseOptions(argv, io);
  const { startControlPlane } = await import("@pgbind/control");
  // JSON lines on stderr; secret-looking fields are redacted as a second line of defence.
  const logger = createLogger({ write: io.stderr, name: "control" });
  let plane: Awaited<ReturnType<typeof startControlPlane>>;
  try {
    plane = await startControlPlane({
      listen: options.listen,
      dataDir: options.dataDir,
      log: logger,
      ...(options.store === undefined ? {} : { store: options.store }),
      ...(options.gatewayUrl === undefined ? {} : { gatewayUrl: options.gatewayUrl }),
    });
  } catch (error) {
    throw startFailure(error, options);
  }
  const tokenFileExists = await exists(plane.tokenFile);
  // Listen for SIGINT/SIGTERM before the banner: whoever waits for it may signal at once.
  const stopSignal = nextStopSignal();
  io.stdout(banner(plane, options, io, tokenFileExists));

  const signal = await stopSignal;
  logger.info({ event: "control_stopping", signal }, "control_stopping");
  await plane.close();
  return EXIT.ok;
};

interface ControlOptions {
  readonly listen: string;
  readonly store: string | undefined;
  readonly dataDir: string;
  /** As given, for messages. */
  readonly dataDirText: string;
  readonly gatewayUrl: string | undefined;
}

function parseOptions(argv: readonly string[], io: CliIo): ControlOptions {
  let values: ReturnType<typeof parse>["values"];
  let positionals: string[];
  try {
    ({ values, positionals } = parse(argv));
  } catch (error) {
    throw new CliError("USAGE", `${(error as Error).message}\nUsage: ${CONTROL_USAGE}`);
  }
  if (positionals.length > 0)
    throw new CliError("USAGE", `pgbind control takes no arguments, only flags\nUsage: ${CONTROL_USAGE}`);
  const listen = values.listen ?? DEFAULT_LISTEN;
  checkListen(listen);
  if (values.store !== undefined) checkStore(values.store);
  if (values["gateway-url"] !== undefined) checkGatewayUrl(values["gateway-url"]);
  if (values["data-dir"] === "") throw new CliError("USAGE", "--data-dir must not be empty");
  const dataDirText = values["data-dir"] ?? DEFAULT_CONTROL_DIR;
  return {
    listen,
    store: values.store,
    dataDir: path.resolve(io.cwd, dataDirText),
    dataDirText,
    gatewayUrl: values["gateway-url"],
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      listen: { type: "string" },
      store: { type: "string" },
      "data-dir": { type: "string" },
      "gateway-url": { type: "string" },
    },
  });
}

function checkListen(value: string): void {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !(port >= 0 && port <= 65_535))
    throw new CliError(
      "USAGE",
      `--listen: "${value}" is not host:port; use e.g. ${DEFAULT_LISTEN} (port 0 picks a free one, [::1]:8788 for IPv6)`,
    );
}

/** Never quotes the value: it may hold the store's password. */
function checkStore(value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError(
      "USAGE",
      "--store: not a URL; expected postgres://user:password@host:5432/database (the PostgreSQL that keeps the registry)",
    );
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:")
    throw new CliError(
      "USAGE",
      `--store: scheme "${url.protocol}" is not postgres: or postgresql: (e.g. postgres://user:password@host:5432/pgbind)`,
    );
  if (url.hostname === "")
    throw new CliError("USAGE", "--store: names no host (e.g. postgres://user@db:5432/pgbind)");
}

function checkGatewayUrl(value: string): void {
  const example = "postgres://127.0.0.1:6432 or postgres://gw.internal:6432?sslmode=require";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError("USAGE", `--gateway-url: not a URL; expected e.g. ${example}`);
  }
  const problems: string[] = [];
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:")
    problems.push(`scheme "${url.protocol}" is not postgres: or postgresql:`);
  if (url.hostname === "") problems.push("names no host");
  if (url.username !== "" || url.password !== "")
    problems.push("must not hold a user or password (each client gets its own credential)");
  if (url.port !== "" && !(Number(url.port) >= 1 && Number(url.port) <= 65_535))
    problems.push("port must be 1–65535");
  if (url.pathname !== "" && url.pathname !== "/")
    problems.push("must not name a database (clients use the config id as the database)");
  for (const name of url.searchParams.keys())
    if (name !== "sslmode") problems.push(`parameter "${name}" is not supported (only sslmode)`);
  const sslmode = url.searchParams.get("sslmode");
  if (sslmode !== null && !(ORIGIN_SSL_MODES as readonly string[]).includes(sslmode))
    problems.push(`sslmode "${sslmode}" is not one of ${ORIGIN_SSL_MODES.join(", ")}`);
  if (problems.length > 0)
    throw new CliError("USAGE", `--gateway-url: ${problems.join("; ")}; expected e.g. ${example}`);
}

function startFailure(error: unknown, options: ControlOptions): CliError {
  const code = (error as { code?: unknown }).code;
  if (code === "EADDRINUSE")
    return new CliError(
      "COMMAND_FAILED",
      `${options.listen} is in use (another \`pgbind control\`?); pass --listen <host:port>, e.g. 127.0.0.1:0 for any free port`,
      { cause: error },
    );
  if (code === "EACCES")
    return new CliError(
      "COMMAND_FAILED",
      `not allowed to listen on ${options.listen}; use a port above 1023`,
      {
        cause: error,
      },
    );
  if (typeof code === "string" && error instanceof Error) {
    // ControlError messages never contain a secret; the store URL's password is masked anyway.
    const exitCode = code === "INVALID_OPTIONS" ? EXIT.usage : EXIT.failed;
    return new CliError("COMMAND_FAILED", `${code}: ${maskUrlPasswords(error.message)}`, {
      exitCode,
      cause: error,
    });
  }
  return new CliError(
    "COMMAND_FAILED",
    `the control plane did not start: ${maskUrlPasswords(String(error))}`,
    {
      cause: error,
    },
  );
}

function banner(
  plane: { url: string; storeUrl: string; token: string | undefined; tokenFile: string },
  options: ControlOptions,
  io: CliIo,
  tokenFileExists: boolean,
): string {
  const tokenFile = relative(plane.tokenFile, io);
  const lines = [
    `pgbind control listening on ${plane.url}`,
    `  data dir  ${options.dataDirText} (${path.join(options.dataDirText, CONTROL_FILE)} lets pgbind commands here find it)`,
    `  store     ${maskUrlPasswords(plane.storeUrl)}${options.store === undefined ? ` (embedded, data in ${path.join(options.dataDirText, "postgres")})` : ""}`,
    `  gateway   ${options.gatewayUrl ?? "not set: pass --gateway-url postgres://<gateway-host>:6432 so clients and pgbind serve know where it is"}`,
  ];
  if (plane.token !== undefined) {
    lines.push(
      "",
      `API token (shown only this once; saved in ${tokenFile}, mode 0600):`,
      `  ${plane.token}`,
      `Elsewhere: PGBIND_CONTROL_URL=${plane.url} PGBIND_TOKEN=<token> pgbind configs list`,
    );
  } else if (tokenFileExists) {
    lines.push(`  token     in ${tokenFile} (PGBIND_TOKEN=$(cat ${tokenFile}) for clients elsewhere)`);
  } else {
    lines.push(
      `  token     not in ${tokenFile}: another control plane on this store created it; use that one's token file, or PGBIND_TOKEN`,
    );
  }
  lines.push("Try: pgbind configs list");
  return `${lines.join("\n")}\n`;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

function relative(file: string, io: CliIo): string {
  const rel = path.relative(io.cwd, file);
  return rel !== "" && !rel.startsWith("..") ? rel : file;
}

/** `postgres://user:secret@host` → `postgres://user:********@host`, anywhere in `text`. */
function maskUrlPasswords(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@/?#\s]*@/gi, "$1********@");
}

/** Resolves with the first SIGINT/SIGTERM; the listeners exist only while waiting. */
function nextStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      for (const s of STOP_SIGNALS) process.off(s, stop);
      resolve(signal);
    };
    for (const s of STOP_SIGNALS) process.on(s, stop);
  });
}
