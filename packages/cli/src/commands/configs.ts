import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  CLIENT_OPTIONS,
  connect,
  DISCOVERY_HELP,
  type OptionsConfig,
  parseSubcommand,
  parseWholeNumber,
  positionals,
  printJson,
} from "../control/command.js";
import { formatFields, formatTable, formatTime } from "../control/table.js";
import {
  type Config,
  type ConfigInput,
  ORIGIN_SSL_MODES,
  type OriginSslMode,
  POOL_MODES,
  type PoolMode,
  type Warning,
} from "../control/types.js";
import { CliError, EXIT } from "../errors.js";
import type { CliIo, Command } from "../io.js";

export const CONFIGS_USAGE =
  "pgbind configs (create <name> | list | get <id> | update <id> | delete <id>) [flags] [--json]";

const CREATE_USAGE =
  "pgbind configs create <name> (--connection-string <postgres://…> | --origin-host <host> [--origin-port 5432] --database <db> --origin-user <user>) [--origin-password <pw> | --origin-password-stdin] [--sslmode prefer] [--sslrootcert <ca.pem>] [--pool-size 20] [--pool-mode transaction|session] [--json]";
const UPDATE_USAGE = "pgbind configs update <id> [--name <name>] [any flag of create] [--json]";
const LIST_USAGE = "pgbind configs list [--json]";
const GET_USAGE = "pgbind configs get <id> [--json]";
const DELETE_USAGE = "pgbind configs delete <id> [--json]";

/** The full help of `pgbind configs`, shown by `pgbind configs --help`. */
export const CONFIGS_HELP = `  ${CREATE_USAGE}
  ${LIST_USAGE}
  ${GET_USAGE}
  ${UPDATE_USAGE}
  ${DELETE_USAGE}

The origin password can come from --origin-password-stdin (e.g. \`printf %s "$PW" | pgbind configs
create …\`) or the PGBIND_ORIGIN_PASSWORD environment variable, so it need not be in the shell history;
--origin-password <pw> and a password inside --connection-string work too. It is never printed.
--sslmode is one of ${ORIGIN_SSL_MODES.join(", ")};
--sslrootcert reads a PEM CA bundle from a file (on update, --sslrootcert none removes it).
update changes only what is given (origin fields merge; --connection-string replaces the origin).
create and update try the origin (up to 5 s); a warning on stderr says why it will not work yet.
Output: aligned tables, or with --json the control plane's JSON objects.

${DISCOVERY_HELP}`;

const ORIGIN_OPTIONS = {
  "connection-string": { type: "string" },
  "origin-host": { type: "string" },
  "origin-port": { type: "string" },
  database: { type: "string" },
  "origin-user": { type: "string" },
  "origin-password": { type: "string" },
  "origin-password-stdin": { type: "boolean" },
  sslmode: { type: "string" },
  sslrootcert: { type: "string" },
  "pool-size": { type: "string" },
  "pool-mode": { type: "string" },
} as const satisfies OptionsConfig;

/** `pgbind configs …`: create, list, show, change and delete binding configs on the control plane. */
export const configsCommand: Command = async (argv, io) => {
  const [sub, ...rest] = argv;
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(`${CONFIGS_HELP}\n`);
    return EXIT.ok;
  }
  switch (sub) {
    case "create":
      return create(rest, io);
    case "list":
    case "ls":
      return list(rest, io);
    case "get":
    case "show":
      return get(rest, io);
    case "update":
      return update(rest, io);
    case "delete":
    case "rm":
      return remove(rest, io);
    default:
      throw new CliError(
        "USAGE",
        `${sub === undefined ? "expected a subcommand" : `unknown subcommand "${sub}"`}: create, list, get, update or delete\nUsage: ${CONFIGS_USAGE}`,
      );
  }
};

async function create(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals: given } = parseSubcommand(
    argv,
    { ...CLIENT_OPTIONS, ...ORIGIN_OPTIONS },
    CREATE_USAGE,
  );
  const [name] = positionals(given, ["<name>"], CREATE_USAGE) as [string];
  const { body, secrets } = await configBody(values, io, "create", CREATE_USAGE);
  const client = await connect(values, io, secrets);
  const result = await client.createConfig({ name, ...body });
  printWarnings(io, result.warnings);
  if (values.json) {
    printJson(io, result);
    return EXIT.ok;
  }
  io.stdout(
    `Created config ${result.config.name} (${result.config.id})\n${formatFields(configFields(result.config))}\n` +
      `Next: mint a credential with \`pgbind credentials create ${result.config.id}\`, and bind it in w7s.json:\n` +
      `  {"bindings": {"hyperdrive": [{"binding": "DB", "id": "${result.config.id}"}]}}\n`,
  );
  return EXIT.ok;
}

async function update(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals: given } = parseSubcommand(
    argv,
    { ...CLIENT_OPTIONS, ...ORIGIN_OPTIONS, name: { type: "string" } },
    UPDATE_USAGE,
  );
  const [id] = positionals(given, ["<id>"], UPDATE_USAGE) as [string];
  const { body, secrets } = await configBody(values, io, "update", UPDATE_USAGE);
  if (values.name !== undefined) body.name = values.name;
  if (Object.keys(body).length === 0)
    throw new CliError(
      "USAGE",
      `nothing to change: give at least one of --name, --connection-string, --origin-host, --origin-port, --database, --origin-user, --origin-password(-stdin), --sslmode, --sslrootcert, --pool-size, --pool-mode\nUsage: ${UPDATE_USAGE}`,
    );
  const client = await connect(values, io, secrets);
  const result = await client.updateConfig(id, body);
  printWarnings(io, result.warnings);
  if (values.json) printJson(io, result);
  else
    io.stdout(
      `Updated config ${result.config.name} (${result.config.id})\n${formatFields(configFields(result.config))}`,
    );
  return EXIT.ok;
}

async function list(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals: given } = parseSubcommand(argv, CLIENT_OPTIONS, LIST_USAGE);
  positionals(given, [], LIST_USAGE);
  const result = await (await connect(values, io)).listConfigs();
  if (values.json) {
    printJson(io, result);
    return EXIT.ok;
  }
  if (result.configs.length === 0) {
    io.stdout("No configs yet; create one with `pgbind configs create <name> --connection-string …`\n");
    return EXIT.ok;
  }
  io.stdout(
    formatTable(
      ["ID", "NAME", "ORIGIN", "SSLMODE", "POOL", "UPDATED"],
      result.configs.map((c) => [
        c.id,
        c.name,
        originText(c),
        c.origin.sslmode,
        `${c.poolMode} ${c.poolSize}`,
        formatTime(c.updatedAt),
      ]),
    ),
  );
  return EXIT.ok;
}

async function get(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals: given } = parseSubcommand(argv, CLIENT_OPTIONS, GET_USAGE);
  const [id] = positionals(given, ["<id>"], GET_USAGE) as [string];
  const result = await (await connect(values, io)).getConfig(id);
  if (values.json) printJson(io, result);
  else io.stdout(formatFields(configFields(result.config)));
  return EXIT.ok;
}

async function remove(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals: given } = parseSubcommand(argv, CLIENT_OPTIONS, DELETE_USAGE);
  const [id] = positionals(given, ["<id>"], DELETE_USAGE) as [string];
  await (await connect(values, io)).deleteConfig(id);
  if (values.json) printJson(io, { id, deleted: true });
  else io.stdout(`Deleted config ${id} and its credentials\n`);
  return EXIT.ok;
}

type OriginValues = {
  readonly [K in keyof typeof ORIGIN_OPTIONS]?: (typeof ORIGIN_OPTIONS)[K]["type"] extends "boolean"
    ? boolean | undefined
    : string | undefined;
};

/**
 * The create/update body from the flags, and the secret texts in it (masked in any error message).
 * Never echoes a connection string or a password in an error.
 */
async function configBody(
  values: OriginValues,
  io: CliIo,
  mode: "create" | "update",
  usage: string,
): Promise<{ body: ConfigInput; secrets: string[] }> {
  const body: ConfigInput = {};
  const secrets: string[] = [];
  const given = await passwordFromFlags(values, usage);
  const envPassword =
    typeof io.env.PGBIND_ORIGIN_PASSWORD === "string" && io.env.PGBIND_ORIGIN_PASSWORD !== ""
      ? io.env.PGBIND_ORIGIN_PASSWORD
      : undefined;
  const sslmode = values.sslmode === undefined ? undefined : parseSslMode(values.sslmode);
  const fieldFlags = (["origin-host", "origin-port", "database", "origin-user"] as const).filter(
    (f) => values[f] !== undefined,
  );

  if (values["connection-string"] !== undefined) {
    if (fieldFlags.length > 0)
      throw new CliError(
        "USAGE",
        `--connection-string and ${fieldFlags.map((f) => `--${f}`).join(", ")} describe the origin twice; give one form\nUsage: ${usage}`,
      );
    const url = parseConnectionString(values["connection-string"]);
    const inQuery = url.searchParams.get("password");
    if (url.password !== "" || inQuery !== null) {
      if (given !== undefined)
        throw new CliError(
          "USAGE",
          `--connection-string already holds a password; drop ${given.flag}, or remove the password from the URL`,
        );
      secrets.push(decode(url.password), url.password, inQuery ?? "");
    } else {
      const password = given?.value ?? envPassword;
      if (password === undefined)
        throw new CliError(
          "USAGE",
          "--connection-string has no password: pipe it to --origin-password-stdin, set PGBIND_ORIGIN_PASSWORD, or put it in the URL",
        );
      url.password = encodeURIComponent(password);
      secrets.push(password, url.password);
    }
    if (sslmode !== undefined) url.searchParams.set("sslmode", sslmode);
    body.connectionString = url.toString();
    secrets.push(body.connectionString);
  } else {
    const origin: NonNullable<ConfigInput["origin"]> = {};
    if (values["origin-host"] !== undefined) origin.host = values["origin-host"];
    if (values["origin-port"] !== undefined)
      origin.port = parseWholeNumber(values["origin-port"], "--origin-port", "5432");
    if (values.database !== undefined) origin.database = values.database;
    if (values["origin-user"] !== undefined) origin.user = values["origin-user"];
    const password = given?.value ?? (mode === "create" ? envPassword : undefined);
    if (password !== undefined) {
      origin.password = password;
      secrets.push(password, encodeURIComponent(password));
    }
    if (sslmode !== undefined) origin.sslmode = sslmode;
    if (mode === "create") {
      const missing = [
        origin.host === undefined ? "--origin-host <host>" : undefined,
        origin.database === undefined ? "--database <db>" : undefined,
        origin.user === undefined ? "--origin-user <user>" : undefined,
        origin.password === undefined
          ? "the origin password (--origin-password-stdin, PGBIND_ORIGIN_PASSWORD or --origin-password)"
          : undefined,
      ].filter((m) => m !== undefined);
      if (missing.length > 0)
        throw new CliError(
          "USAGE",
          `missing ${missing.join(", ")}; or give the whole origin as --connection-string postgres://user@host:5432/db\nUsage: ${usage}`,
        );
    }
    if (Object.keys(origin).length > 0) body.origin = origin;
  }
  if (values.sslrootcert !== undefined) {
    const remove = mode === "update" && values.sslrootcert === "none";
    body.origin = { ...body.origin, sslrootcert: remove ? null : await readCa(values.sslrootcert, io) };
  }
  if (values["pool-size"] !== undefined)
    body.poolSize = parseWholeNumber(values["pool-size"], "--pool-size", "20");
  if (values["pool-mode"] !== undefined) body.poolMode = parsePoolMode(values["pool-mode"]);
  return { body, secrets: secrets.filter((s) => s !== "") };
}

async function passwordFromFlags(
  values: OriginValues,
  usage: string,
): Promise<{ value: string; flag: string } | undefined> {
  if (values["origin-password"] !== undefined && values["origin-password-stdin"])
    throw new CliError(
      "USAGE",
      `give --origin-password or --origin-password-stdin, not both\nUsage: ${usage}`,
    );
  if (values["origin-password"] !== undefined) {
    if (values["origin-password"] === "") throw new CliError("USAGE", "--origin-password must not be empty");
    return { value: values["origin-password"], flag: "--origin-password" };
  }
  if (!values["origin-password-stdin"]) return undefined;
  if (process.stdin.isTTY)
    throw new CliError(
      "USAGE",
      '--origin-password-stdin reads the password from a pipe, e.g. `printf %s "$PW" | pgbind configs …`',
    );
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // One trailing newline is the shell's (echo), not the password's.
  const value = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (value === "") throw new CliError("USAGE", "--origin-password-stdin: standard input was empty");
  return { value, flag: "--origin-password-stdin" };
}

/** A postgres:// URL; errors never quote it (it may hold a password). */
function parseConnectionString(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(
      "USAGE",
      "--connection-string: not a URL; expected postgres://user[:password]@host[:port]/database[?sslmode=…]",
    );
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:")
    throw new CliError(
      "USAGE",
      `--connection-string: scheme "${url.protocol}" is not postgres: or postgresql: (e.g. postgres://user@host:5432/db)`,
    );
  return url;
}

function parseSslMode(text: string): OriginSslMode {
  if ((ORIGIN_SSL_MODES as readonly string[]).includes(text)) return text as OriginSslMode;
  throw new CliError("USAGE", `--sslmode: "${text}" is not one of ${ORIGIN_SSL_MODES.join(", ")}`);
}

function parsePoolMode(text: string): PoolMode {
  if ((POOL_MODES as readonly string[]).includes(text)) return text as PoolMode;
  throw new CliError("USAGE", `--pool-mode: "${text}" is not one of ${POOL_MODES.join(", ")}`);
}

async function readCa(file: string, io: CliIo): Promise<string> {
  let text: string;
  try {
    text = await readFile(path.resolve(io.cwd, file), "utf8");
  } catch (error) {
    throw new CliError(
      "USAGE",
      `--sslrootcert: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----"))
    throw new CliError(
      "USAGE",
      `--sslrootcert: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  return text;
}

function printWarnings(io: CliIo, warnings: readonly Warning[] | undefined): void {
  for (const w of warnings ?? []) io.stderr(`pgbind configs: warning ${w.code}: ${w.message}\n`);
  if ((warnings ?? []).length > 0)
    io.stderr("pgbind configs: the config is stored anyway; fix the origin and `pgbind configs update` it\n");
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `user@host:port/database`, an IPv6 host in brackets. */
export function originText(config: Config): string {
  const { user, host, port, database } = config.origin;
  return `${user}@${host.includes(":") ? `[${host}]` : host}:${port}/${database}`;
}

function configFields(config: Config): [string, string][] {
  const certificates = config.origin.sslrootcert?.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  const timeouts = Object.entries(config.timeouts ?? {})
    .map(([k, v]) => `${k.replace(/Ms$/, "")} ${v} ms`)
    .join(", ");
  return [
    ["id", config.id],
    ["name", config.name],
    ["origin", originText(config)],
    ["sslmode", config.origin.sslmode],
    [
      "sslrootcert",
      config.origin.sslrootcert === undefined || config.origin.sslrootcert === null
        ? "-"
        : `${certificates} certificate${certificates === 1 ? "" : "s"} (PEM)`,
    ],
    ["pool", `${config.poolMode}, ${config.poolSize} server connections`],
    ["timeouts", timeouts || "-"],
    ["created", formatTime(config.createdAt)],
    ["updated", formatTime(config.updatedAt)],
  ];
}
