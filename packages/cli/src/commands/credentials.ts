import {
  CLIENT_OPTIONS,
  connect,
  DISCOVERY_HELP,
  parseSubcommand,
  parseWholeNumber,
  positionals,
  printJson,
} from "../control/command.js";
import { formatTable, formatTime } from "../control/table.js";
import type { Credential, MintedCredential } from "../control/types.js";
import { CliError, EXIT } from "../errors.js";
import type { CliIo, Command } from "../io.js";

export const CREDENTIALS_USAGE =
  "pgbind credentials (create | list | rotate [--grace-seconds 3600] | revoke) <config-id> [<credential-id>] [--json]";

const CREATE_USAGE = "pgbind credentials create <config-id> [--json]";
const LIST_USAGE = "pgbind credentials list <config-id> [--json]";
const ROTATE_USAGE = "pgbind credentials rotate <config-id> [--grace-seconds 3600] [--json]";
const REVOKE_USAGE = "pgbind credentials revoke <config-id> <credential-id> [--json]";

/** The full help of `pgbind credentials`, shown by `pgbind credentials --help`. */
export const CREDENTIALS_HELP = `  ${CREATE_USAGE}
  ${LIST_USAGE}
  ${ROTATE_USAGE}
  ${REVOKE_USAGE}

Workloads present a credential to the gateway (user = the credential's user, database = the config id).
create mints one; its password and connection string are shown once, then never again.
rotate mints a new one and lets every active one expire after --grace-seconds (default 3600).
revoke makes gateways refuse a credential within seconds. list shows every credential, newest first.

${DISCOVERY_HELP}`;

/** `pgbind credentials …`: mint, list, rotate and revoke the gateway credentials of a config. */
export const credentialsCommand: Command = async (argv, io) => {
  const [sub, ...rest] = argv;
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(`${CREDENTIALS_HELP}\n`);
    return EXIT.ok;
  }
  switch (sub) {
    case "create":
    case "mint":
      return create(rest, io);
    case "list":
    case "ls":
      return list(rest, io);
    case "rotate":
      return rotate(rest, io);
    case "revoke":
      return revoke(rest, io);
    default:
      throw new CliError(
        "USAGE",
        `${sub === undefined ? "expected a subcommand" : `unknown subcommand "${sub}"`}: create, list, rotate or revoke\nUsage: ${CREDENTIALS_USAGE}`,
      );
  }
};

async function create(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals: given } = parseSubcommand(argv, CLIENT_OPTIONS, CREATE_USAGE);
  const [configId] = positionals(given, ["<config-id>"], CREATE_USAGE) as [string];
  const minted = await (await connect(values, io)).mintCredential(configId);
  if (values.json) printJson(io, minted);
  else io.stdout(mintedText("Minted", minted));
  return EXIT.ok;
}

async function rotate(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals: given } = parseSubcommand(
    argv,
    { ...CLIENT_OPTIONS, "grace-seconds": { type: "string" } },
    ROTATE_USAGE,
  );
  const [configId] = positionals(given, ["<config-id>"], ROTATE_USAGE) as [string];
  const grace =
    values["grace-seconds"] === undefined
      ? undefined
      : parseWholeNumber(values["grace-seconds"], "--grace-seconds", "3600");
  const client = await connect(values, io);
  const minted = await client.rotateCredentials(configId, grace);
  if (values.json) {
    printJson(io, minted);
    return EXIT.ok;
  }
  io.stdout(mintedText("Rotated: minted", minted));
  const { credentials } = await client.listCredentials(configId);
  const expiring = credentials.filter((c) => c.status === "expiring");
  if (expiring.length > 0)
    io.stdout(
      `\nStill accepted until they expire:\n${indent(credentialTable(expiring))}` +
        "Move every workload to the new credential before then (`pgbind credentials revoke` ends one early).\n",
    );
  return EXIT.ok;
}

async function list(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals: given } = parseSubcommand(argv, CLIENT_OPTIONS, LIST_USAGE);
  const [configId] = positionals(given, ["<config-id>"], LIST_USAGE) as [string];
  const result = await (await connect(values, io)).listCredentials(configId);
  if (values.json) printJson(io, result);
  else if (result.credentials.length === 0)
    io.stdout(`No credentials for ${configId}; mint one with \`pgbind credentials create ${configId}\`\n`);
  else io.stdout(credentialTable(result.credentials));
  return EXIT.ok;
}

async function revoke(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals: given } = parseSubcommand(argv, CLIENT_OPTIONS, REVOKE_USAGE);
  const [configId, credentialId] = positionals(given, ["<config-id>", "<credential-id>"], REVOKE_USAGE) as [
    string,
    string,
  ];
  const result = await (await connect(values, io)).revokeCredential(configId, credentialId);
  if (values.json) printJson(io, result);
  else
    io.stdout(
      `Revoked ${result.credential.id} (user ${result.credential.user}); gateways refuse it within seconds\n`,
    );
  return EXIT.ok;
}

/** The one-time display of a fresh credential. */
function mintedText(verb: string, minted: MintedCredential): string {
  const c = minted.credential;
  const lines = [
    `${verb} credential ${c.id} for config ${c.configId}`,
    `  user               ${c.user}`,
    `  password           ${minted.password}`,
    minted.connectionString === null
      ? "  connection string  (unknown: the control plane has no gateway address; start it with `pgbind control --gateway-url postgres://host:6432`)"
      : `  connection string  ${minted.connectionString}`,
    "The password is shown only this once: store it now (e.g. as the workload's secret).",
  ];
  return `${lines.join("\n")}\n`;
}

function credentialTable(credentials: readonly Credential[]): string {
  return formatTable(
    ["ID", "USER", "STATUS", "CREATED", "EXPIRES", "REVOKED"],
    credentials.map((c) => [
      c.id,
      c.user,
      c.status,
      formatTime(c.createdAt),
      formatTime(c.expiresAt),
      formatTime(c.revokedAt),
    ]),
  );
}

function indent(text: string): string {
  return text.replace(/^(?=.)/gm, "  ");
}
