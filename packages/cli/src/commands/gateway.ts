import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { parseArgs } from "node:util";
import {
  type ConfigSource,
  createSelfSignedCertificate,
  DEFAULT_POOL_SIZE,
  DEFAULT_TIMEOUTS,
  FileConfigSource,
  Gateway,
  type GatewayConfig,
  GatewayConfigError,
  type GatewayLog,
  MAX_TIMEOUT_MS,
  type MetricsServer,
  nativeSocketLayer,
  ORIGIN_SSL_MODES,
  type OriginSslMode,
  startMetricsServer,
} from "@pgbind/gateway";
import { randomPassword } from "@pgbind/local-postgres";
import { createScramVerifier } from "@pgbind/protocol";
import { CliError, EXIT } from "../errors.js";
import type { CliIo, Command } from "../io.js";
import { createLogger, type Level, parseLogLevel } from "../log.js";

export const GATEWAY_USAGE =
  "pgbind gateway [--config gateway.json [--no-watch] | --store postgres://…|local [--control-dir .pgbind/control] | --origin <postgres://…> [--user <name> --password <pw>] [--pool-size 20] [--session]] [--listen 127.0.0.1:6432] [--tls-cert <pem> --tls-key <pem> | --tls-self-signed [--tls-dir .pgbind/gateway]] [--login-timeout-ms 60000] [--admin-user <name>] [--metrics 127.0.0.1:9127] [--log-level info] [--show-password]";

/** Where `--tls-self-signed` writes its certificate (relative to the working directory) unless `--tls-dir` says. */
export const DEFAULT_TLS_DIR = ".pgbind/gateway";
export const SELF_SIGNED_CERT_FILE = "self-signed.crt";

/** How long a shutdown waits for running transactions before closing every client. */
const DRAIN_GRACE_MS = 10_000;

/**
 * The gateway's log events (`GatewayLog(event, fields)` and the CLI's own) with their pino level and
 * message. Events not listed here log at info, or at warn when their name says something failed.
 */
export const GATEWAY_EVENTS: Readonly<Record<string, { readonly level: Level; readonly msg: string }>> = {
  listening: { level: "info", msg: "gateway listening" },
  tls_self_signed: { level: "info", msg: "generated a self-signed TLS certificate for clients" },
  config_applied: { level: "info", msg: "config applied" },
  config_reloaded: { level: "info", msg: "config reloaded" },
  config_rejected: { level: "error", msg: "config rejected; the previous config stays in effect" },
  auth_failed: { level: "warn", msg: "client authentication failed" },
  cancel_failed: { level: "warn", msg: "could not forward a cancel request to the origin" },
  draining: { level: "info", msg: "draining: refusing new connections, letting transactions finish" },
  stopped: { level: "info", msg: "gateway stopped" },
};

/** The pino level and message for a gateway event. */
export function describeGatewayEvent(event: string): { level: Level; msg: string } {
  const known = GATEWAY_EVENTS[event];
  if (known) return known;
  const level: Level = /(^|_)(failed|failure|error|refused|rejected|timeout)$/.test(event) ? "warn" : "info";
  return { level, msg: event.replaceAll("_", " ") };
}

/**
 * `pgbind gateway`: runs the gateway from a config file, or for one origin given on the command line
 * (clients then use the origin's database name). SIGHUP reloads the config (so does editing the file,
 * unless --no-watch); SIGINT/SIGTERM drain. Logs are JSON lines on stderr (pino); the lines a person
 * needs to connect go to stdout.
 */
export const gatewayCommand: Command = async (argv, io) => {
  let values: ReturnType<typeof parse>["values"];
  try {
    ({ values } = parse(argv));
  } catch (error) {
    throw new CliError("USAGE", `${(error as Error).message}\nUsage: ${GATEWAY_USAGE}`);
  }
  const modes = [values.config, values.origin, values.store].filter((v) => v !== undefined).length;
  if (modes !== 1) {
    throw new CliError(
      "USAGE",
      `give one of --config <file>, --store <postgres://…|local> (the control plane's registry) or --origin <url>\nUsage: ${GATEWAY_USAGE}`,
    );
  }
  if (values["control-dir"] !== undefined && values.store === undefined) {
    throw new CliError("USAGE", "--control-dir goes with --store (it is where the registry's master key is)");
  }
  if (values["no-watch"] && values.config === undefined) {
    throw new CliError("USAGE", "--no-watch goes with --config (there is no file to watch with --origin)");
  }
  const logger = createLogger({
    level: parseLogLevel(values["log-level"]),
    name: "gateway",
    write: io.stderr,
  });
  // Fields never hold secrets (GatewayLog's contract, and this file's); the logger's redaction is a backstop.
  const log: GatewayLog = (event, fields) => {
    const { level, msg } = describeGatewayEvent(event);
    // `event` leads each line, and a field of the same name cannot override it.
    logger[level](Object.assign({ event }, fields, { event }), msg);
  };
  // Every check that can fail comes before anything is generated, written or started.
  const { host, port } = parseListen(values.listen ?? "127.0.0.1:6432");
  const metricsListen = values.metrics === undefined ? undefined : parseListen(values.metrics, "--metrics");
  const loginTimeoutMs =
    values["login-timeout-ms"] === undefined ? undefined : parseLoginTimeout(values["login-timeout-ms"]);
  const quick = values.origin === undefined ? undefined : quickConfig(values, io);
  const adminCredentials = adminFrom(values["admin-user"], io);
  const clientTls = await setUpTls(values, host, io, log);

  let source: ConfigSource;
  let closeSource = async () => {};
  if (values.store !== undefined) {
    const registry = await registrySource(values.store, values["control-dir"] ?? DEFAULT_CONTROL_DIR, io);
    closeSource = () => registry.close();
    source = {
      description: registry.description,
      load: () => registry.load(),
      watch: (onChange) =>
        registry.watch((result) => {
          onChange(result);
          if ("config" in result) {
            log("config_reloaded", {
              reason: "registry change",
              source: registry.description,
              bindings: result.config.bindings.length,
            });
          }
        }),
    };
  } else if (quick === undefined) {
    const file = new FileConfigSource(
      path.resolve(io.cwd, values.config as string),
      io.env as Record<string, string | undefined>,
    );
    source = {
      description: file.description,
      load: () => file.load(),
      watch: values["no-watch"]
        ? () => () => {}
        : (onChange) =>
            file.watch((result) => {
              onChange(result);
              if ("config" in result) {
                log("config_reloaded", {
                  reason: "file changed",
                  source: file.description,
                  bindings: result.config.bindings.length,
                });
              }
            }),
    };
  } else {
    source = { description: "--origin", load: async () => quick.config, watch: () => () => {} };
    const password = values["show-password"] ? encodeURIComponent(quick.password) : "********";
    const sslParams = !clientTls
      ? "sslmode=disable"
      : clientTls.rootCertFile === undefined
        ? "sslmode=require"
        : `sslmode=verify-full&sslrootcert=${encodeURIComponent(clientTls.rootCertFile).replaceAll("%2F", "/")}`;
    io.stdout(
      `Clients connect with: postgres://${encodeURIComponent(quick.user)}:${password}@${host}:${port === 0 ? "<port>" : port}/${encodeURIComponent(quick.database)}?${sslParams}\n`,
    );
    if (quick.generated && !values["show-password"]) {
      io.stdout(
        "(a password was generated for this run; pass --show-password to print it, or --user/--password to choose one)\n",
      );
    }
  }

  const gateway = new Gateway({
    source,
    host,
    port,
    log,
    ...(loginTimeoutMs === undefined ? {} : { loginTimeoutMs }),
    ...(clientTls ? { tls: clientTls.context } : {}),
    ...(adminCredentials ? { adminCredentials } : {}),
  });
  let address: { address: string; port: number };
  try {
    address = await gateway.start();
  } catch (error) {
    await closeSource();
    if (error instanceof GatewayConfigError) throw new CliError("USAGE", error.message);
    if (isControlError(error))
      throw new CliError("COMMAND_FAILED", `${source.description}: ${error.message}`);
    const code = (error as { code?: string }).code;
    if (code === "EADDRINUSE")
      throw new CliError("COMMAND_FAILED", `${host}:${port} is in use; pass --listen <host:port>`);
    throw error;
  }

  // The signal handlers go in before anything says the gateway is up, so a signal sent on seeing that is handled.
  let metrics: Promise<MetricsServer | undefined> = Promise.resolve(undefined);
  const reload = (signal: NodeJS.Signals) => {
    source
      .load()
      .then((config) => {
        gateway.apply(config);
        log("config_reloaded", {
          reason: signal,
          source: source.description,
          bindings: config.bindings.length,
        });
      })
      .catch((error: Error) =>
        log("config_rejected", { reason: signal, source: source.description, error: error.message }),
      );
  };
  let detach = () => {};
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      detach();
      const started = Date.now();
      // close() stops listening before it returns, so new connections are refused once this is logged.
      const closing = gateway.close(DRAIN_GRACE_MS);
      log("draining", { signal, graceMs: DRAIN_GRACE_MS, clients: gateway.sessions.size });
      closing
        .then(() => closeSource())
        .then(() => metrics)
        .then((server) => server?.close())
        .catch((error: Error) => log("shutdown_failed", { error: error.message }))
        .finally(() => {
          log("stopped", { signal, ms: Date.now() - started });
          resolve();
        });
    };
    detach = () => {
      process.removeListener("SIGHUP", reload);
      process.removeListener("SIGINT", stop);
      process.removeListener("SIGTERM", stop);
    };
    process.on("SIGHUP", reload);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });

  io.stdout(`pgbind gateway listening on ${address.address}:${address.port} (${source.description})\n`);
  log("listening", {
    address: address.address,
    port: address.port,
    source: source.description,
    tls: clientTls ? (clientTls.rootCertFile === undefined ? "certificate" : "self-signed") : "off",
    watch: quick === undefined && !values["no-watch"],
    admin: adminCredentials !== undefined,
    // Which socket layer serves plain-TCP connections: "node" where the native one is not built.
    sockets: nativeSocketLayer() ? "native" : "node",
  });
  if (adminCredentials) {
    io.stdout(
      `admin console: psql -h ${address.address} -p ${address.port} -U ${adminCredentials[0]?.user} pgbind  (SHOW HELP)\n`,
    );
  }
  if (metricsListen !== undefined) {
    metrics = startMetricsServer(gateway.view(), metricsListen);
    try {
      const server = (await metrics) as MetricsServer;
      io.stdout(`metrics on ${server.url}/metrics, health on ${server.url}/healthz\n`);
    } catch (error) {
      metrics = Promise.resolve(undefined);
      detach();
      await gateway.close(0);
      throw new CliError("COMMAND_FAILED", `--metrics ${values.metrics}: ${(error as Error).message}`);
    }
  }
  await stopped;
  return EXIT.ok;
};

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: "string" },
      store: { type: "string" },
      "control-dir": { type: "string" },
      origin: { type: "string" },
      user: { type: "string" },
      password: { type: "string" },
      "pool-size": { type: "string" },
      session: { type: "boolean" },
      listen: { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-self-signed": { type: "boolean" },
      "tls-dir": { type: "string" },
      "no-watch": { type: "boolean" },
      "log-level": { type: "string" },
      "show-password": { type: "boolean" },
      "admin-user": { type: "string" },
      metrics: { type: "string" },
      "login-timeout-ms": { type: "string" },
    },
  });
}

/** Where `pgbind control` keeps its state by default; `--store local` finds the store and key there. */
const DEFAULT_CONTROL_DIR = ".pgbind/control";

/**
 * The control plane's registry as a config source: `--store local` is the embedded store of the control
 * plane whose data dir is `controlDir`; the master key comes from PGBIND_MASTER_KEY or `<controlDir>/master.key`.
 */
async function registrySource(store: string, controlDir: string, io: CliIo) {
  const control = await import("@pgbind/control");
  const dir = path.resolve(io.cwd, controlDir);
  try {
    const url = store === "local" ? await control.localStoreUrl(dir) : store;
    if (!/^postgres(ql)?:\/\//.test(url)) {
      throw new CliError(
        "USAGE",
        '--store: expected a postgres:// URL or "local" (the local control plane\'s store)',
      );
    }
    const masterKey = await control.loadMasterKey({
      env: io.env as Record<string, string | undefined>,
      dataDir: dir,
    });
    return new control.RegistryConfigSource({ store: url, masterKey });
  } catch (error) {
    if (isControlError(error)) throw new CliError("USAGE", `--store: ${error.message}`);
    throw error;
  }
}

function isControlError(error: unknown): error is Error & { code: string; status: number } {
  return error instanceof Error && error.name.startsWith("ControlError");
}

/** The admin user's password comes from PGBIND_ADMIN_PASSWORD, never from the command line (ps shows it). */
function adminFrom(user: string | undefined, io: CliIo) {
  if (user === undefined) return undefined;
  const password = io.env.PGBIND_ADMIN_PASSWORD;
  if (typeof password !== "string" || password === "") {
    throw new CliError(
      "USAGE",
      "--admin-user needs the admin password in the PGBIND_ADMIN_PASSWORD environment variable",
    );
  }
  return [{ user, scramVerifier: createScramVerifier(password) }];
}

function parseListen(value: string, flag = "--listen"): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CliError(
      "USAGE",
      `${flag}: "${value}" is not host:port (e.g. 127.0.0.1:6432; port 0 picks a free one)`,
    );
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

/** `--login-timeout-ms`: whole milliseconds; 0 is refused, since a login that never ends is what it guards against. */
function parseLoginTimeout(text: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(ms >= 1 && ms <= MAX_TIMEOUT_MS)) {
    throw new CliError(
      "USAGE",
      `--login-timeout-ms: ${JSON.stringify(text)} is not valid; expected a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS} (e.g. 60000)`,
    );
  }
  return ms;
}

/** TLS for clients: from --tls-cert/--tls-key, generated by --tls-self-signed, or none. */
async function setUpTls(
  values: ReturnType<typeof parse>["values"],
  listenHost: string,
  io: CliIo,
  log: GatewayLog,
): Promise<{ context: tls.SecureContext; rootCertFile?: string } | undefined> {
  const cert = values["tls-cert"];
  const key = values["tls-key"];
  if (values["tls-self-signed"]) {
    if (cert !== undefined || key !== undefined) {
      throw new CliError(
        "USAGE",
        "--tls-self-signed generates its own certificate: give it, or --tls-cert and --tls-key, not both",
      );
    }
    return selfSignedTls(values["tls-dir"] ?? DEFAULT_TLS_DIR, listenHost, io, log);
  }
  if (values["tls-dir"] !== undefined) {
    throw new CliError("USAGE", "--tls-dir goes with --tls-self-signed (it says where the certificate goes)");
  }
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined)
    throw new CliError("USAGE", "--tls-cert and --tls-key go together");
  try {
    return {
      context: tls.createSecureContext({
        cert: await readFile(path.resolve(io.cwd, cert)),
        key: await readFile(path.resolve(io.cwd, key)),
      }),
    };
  } catch (error) {
    throw new CliError("USAGE", `cannot use the TLS certificate/key: ${(error as Error).message}`);
  }
}

/**
 * Generates a certificate and key for this run (the key stays in memory) and writes the certificate, which
 * clients use as their sslrootcert, to `<dir>/self-signed.crt`.
 */
async function selfSignedTls(dir: string, listenHost: string, io: CliIo, log: GatewayLog) {
  // localhost, 127.0.0.1 and ::1 are always in; add the address clients dial when it is a specific one.
  const wildcard = listenHost === "0.0.0.0" || listenHost === "::" || listenHost === "";
  const hosts = wildcard ? [os.hostname()] : [listenHost];
  const generated = await createSelfSignedCertificate({ hosts })
    // A name that is no valid DNS name (a hostname with "_", say) is left out rather than fatal.
    .catch((error: Error) => {
      if (error instanceof TypeError) return createSelfSignedCertificate({ hosts: [] });
      throw error;
    })
    .catch((error: Error) => {
      throw new CliError(
        "COMMAND_FAILED",
        `--tls-self-signed: cannot generate a certificate: ${error.message}`,
      );
    });
  const file = path.resolve(io.cwd, dir, SELF_SIGNED_CERT_FILE);
  try {
    await mkdir(path.dirname(file), { recursive: true });
    // Write then rename, so a client reading the file never sees half a certificate.
    const partial = `${file}.${process.pid}.tmp`;
    await writeFile(partial, generated.cert, { mode: 0o644 });
    await rename(partial, file);
  } catch (error) {
    throw new CliError(
      "COMMAND_FAILED",
      `--tls-self-signed: cannot write ${file}: ${(error as Error).message}`,
    );
  }
  io.stdout(
    `TLS: self-signed certificate for ${generated.hosts.join(", ")}\n` +
      `  SHA-256 fingerprint ${generated.fingerprint256}\n` +
      `  written to ${file}; clients verify it with sslmode=verify-full sslrootcert=${file}\n`,
  );
  log("tls_self_signed", {
    file,
    fingerprint256: generated.fingerprint256,
    hosts: generated.hosts,
    notAfter: generated.notAfter,
  });
  return {
    context: tls.createSecureContext({ cert: generated.cert, key: generated.key }),
    rootCertFile: file,
  };
}

function quickConfig(values: ReturnType<typeof parse>["values"], io: CliIo) {
  let url: URL;
  try {
    url = new URL(values.origin as string);
  } catch {
    throw new CliError(
      "USAGE",
      "--origin: not a URL; expected postgres://user:password@host:port/database[?sslmode=…]",
    );
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new CliError("USAGE", `--origin: scheme "${url.protocol}" is not postgres:`);
  }
  const originUser = decodeURIComponent(url.username);
  const originPassword =
    decodeURIComponent(url.password) || (io.env.PGBIND_ORIGIN_PASSWORD as string | undefined) || "";
  const database = decodeURIComponent(url.pathname.slice(1));
  const sslmode = (url.searchParams.get("sslmode") ?? "prefer") as OriginSslMode;
  const problems: string[] = [];
  if (!url.hostname) problems.push("--origin: missing host");
  if (!originUser) problems.push("--origin: missing user");
  if (!originPassword) problems.push("--origin: missing password (in the URL, or PGBIND_ORIGIN_PASSWORD)");
  if (!database) problems.push("--origin: missing database name (the path)");
  if (!(ORIGIN_SSL_MODES as readonly string[]).includes(sslmode)) {
    problems.push(`--origin: sslmode "${sslmode}" is not one of ${ORIGIN_SSL_MODES.join(", ")}`);
  }
  if ((values.user === undefined) !== (values.password === undefined))
    problems.push("--user and --password go together");
  const poolSize = values["pool-size"] === undefined ? DEFAULT_POOL_SIZE : Number(values["pool-size"]);
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 10_000) {
    problems.push(`--pool-size: "${values["pool-size"]}" is not an integer from 1 to 10000`);
  }
  if (problems.length > 0) throw new CliError("USAGE", problems.join("\n"));
  const generated = values.password === undefined;
  const user = values.user ?? "app";
  const password = values.password ?? randomPassword();
  const config: GatewayConfig = {
    bindings: [
      {
        id: "origin",
        database,
        credentials: [{ user, scramVerifier: createScramVerifier(password) }],
        origin: {
          host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
          port: url.port ? Number(url.port) : 5432,
          database,
          user: originUser,
          password: originPassword,
          sslmode,
        },
        poolMode: values.session ? "session" : "transaction",
        poolSize,
        timeouts: DEFAULT_TIMEOUTS,
      },
    ],
  };
  return { config, user, password, database, generated };
}
