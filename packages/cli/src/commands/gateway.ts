import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import tls from "node:tls";
import { parseArgs } from "node:util";
import {
  type ConfigSource,
  DEFAULT_POOL_SIZE,
  DEFAULT_TIMEOUTS,
  FileConfigSource,
  Gateway,
  type GatewayConfig,
  GatewayConfigError,
  ORIGIN_SSL_MODES,
  type OriginSslMode,
  startMetricsServer,
} from "@pgbind/gateway";
import { createScramVerifier } from "@pgbind/protocol";
import { CliError, EXIT } from "../errors.js";
import type { CliIo, Command } from "../io.js";

export const GATEWAY_USAGE =
  "pgbind gateway [--config gateway.json | --origin <postgres://…> [--user <name> --password <pw>] [--pool-size 20] [--session]] [--listen 127.0.0.1:6432] [--tls-cert <pem> --tls-key <pem>] [--admin-user <name>] [--metrics 127.0.0.1:9127] [--show-password]";

/**
 * `pgbind gateway`: runs the gateway from a config file, or for one origin given on the command line
 * (clients then use the origin's database name). SIGHUP reloads the config file; SIGINT/SIGTERM drain.
 */
export const gatewayCommand: Command = async (argv, io) => {
  let values: ReturnType<typeof parse>["values"];
  try {
    ({ values } = parse(argv));
  } catch (error) {
    throw new CliError("USAGE", `${(error as Error).message}\nUsage: ${GATEWAY_USAGE}`);
  }
  if ((values.config === undefined) === (values.origin === undefined)) {
    throw new CliError("USAGE", `give either --config <file> or --origin <url>\nUsage: ${GATEWAY_USAGE}`);
  }
  const { host, port } = parseListen(values.listen ?? "127.0.0.1:6432");
  const secureContext = await loadTls(values["tls-cert"], values["tls-key"], io);

  let source: ConfigSource;
  if (values.config !== undefined) {
    source = new FileConfigSource(
      path.resolve(io.cwd, values.config),
      io.env as Record<string, string | undefined>,
    );
  } else {
    const quick = quickConfig(values, io);
    source = { description: "--origin", load: async () => quick.config, watch: () => () => {} };
    const password = values["show-password"] ? encodeURIComponent(quick.password) : "********";
    io.stdout(
      `Clients connect with: postgres://${encodeURIComponent(quick.user)}:${password}@${host}:${port === 0 ? "<port>" : port}/${encodeURIComponent(quick.database)}${secureContext ? "?sslmode=require" : "?sslmode=disable"}\n`,
    );
    if (quick.generated && !values["show-password"]) {
      io.stdout(
        "(a password was generated for this run; pass --show-password to print it, or --user/--password to choose one)\n",
      );
    }
  }

  const log = (event: string, fields: Record<string, unknown>) =>
    io.stderr(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
  const adminCredentials = adminFrom(values["admin-user"], io);
  const gateway = new Gateway({
    source,
    host,
    port,
    log,
    ...(secureContext ? { tls: secureContext } : {}),
    ...(adminCredentials ? { adminCredentials } : {}),
  });
  let address: { address: string; port: number };
  try {
    address = await gateway.start();
  } catch (error) {
    if (error instanceof GatewayConfigError) throw new CliError("USAGE", error.message);
    const code = (error as { code?: string }).code;
    if (code === "EADDRINUSE")
      throw new CliError("COMMAND_FAILED", `${host}:${port} is in use; pass --listen <host:port>`);
    throw error;
  }
  io.stdout(`pgbind gateway listening on ${address.address}:${address.port} (${source.description})\n`);
  if (adminCredentials) {
    io.stdout(
      `admin console: psql -h ${address.address} -p ${address.port} -U ${adminCredentials[0]?.user} pgbind  (SHOW HELP)\n`,
    );
  }
  let metrics: { url: string; close(): Promise<void> } | undefined;
  if (values.metrics !== undefined) {
    const listen = parseListen(values.metrics, "--metrics");
    metrics = await startMetricsServer(gateway.view(), listen).catch((error: Error) => {
      throw new CliError("COMMAND_FAILED", `--metrics ${values.metrics}: ${error.message}`);
    });
    io.stdout(`metrics on ${metrics.url}/metrics, health on ${metrics.url}/healthz\n`);
  }

  await new Promise<void>((resolve) => {
    const reload = () => {
      source.load().then(
        (config) => gateway.apply(config),
        (error: Error) => log("config_rejected", { error: error.message }),
      );
    };
    const stop = (signal: NodeJS.Signals) => {
      process.removeListener("SIGHUP", reload);
      process.removeListener("SIGINT", stop);
      process.removeListener("SIGTERM", stop);
      log("draining", { signal });
      gateway
        .close(10_000)
        .then(() => metrics?.close())
        .then(resolve, resolve);
    };
    process.on("SIGHUP", reload);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return EXIT.ok;
};

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: "string" },
      origin: { type: "string" },
      user: { type: "string" },
      password: { type: "string" },
      "pool-size": { type: "string" },
      session: { type: "boolean" },
      listen: { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "show-password": { type: "boolean" },
      "admin-user": { type: "string" },
      metrics: { type: "string" },
    },
  });
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

async function loadTls(cert: string | undefined, key: string | undefined, io: CliIo) {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined)
    throw new CliError("USAGE", "--tls-cert and --tls-key go together");
  try {
    return tls.createSecureContext({
      cert: await readFile(path.resolve(io.cwd, cert)),
      key: await readFile(path.resolve(io.cwd, key)),
    });
  } catch (error) {
    throw new CliError("USAGE", `cannot use the TLS certificate/key: ${(error as Error).message}`);
  }
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
  const password = values.password ?? randomBytes(18).toString("base64url");
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
