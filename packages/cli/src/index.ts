import { readFileSync } from "node:fs";
import { CliError, EXIT } from "./errors.js";
import type { CliIo, Command } from "./io.js";

export { CliError, type CliErrorCode, EXIT, type ExitCode } from "./errors.js";
export type { CliIo, Command } from "./io.js";

interface CommandEntry {
  /** Loaded on use, so `pgbind resolve` does not pay for the HTTP server or the PostgreSQL driver. */
  readonly load: () => Promise<Command>;
  readonly usage: string;
  readonly summary: string;
  /** More help for `pgbind <command> --help` (subcommands, flags), loaded on use. */
  readonly details?: () => Promise<string>;
}

const COMMANDS: Record<string, CommandEntry> = {
  dev: {
    load: async () => (await import("./commands/dev.js")).devCommand,
    usage:
      "pgbind dev [--manifest w7s.json] [--fresh] [--grace-ms 5000] [--serve <entry> [--port 8787]] [-- <command …>]",
    summary: "Run a local PostgreSQL (data in .pgbind/) and inject the manifest's bindings into a command",
  },
  run: {
    load: async () => (await import("./commands/run.js")).runCommand,
    usage: "pgbind run [--manifest w7s.json] -- <command …>",
    summary: "Run any command with the manifest's bindings, checked before it starts",
  },
  serve: {
    load: async () => (await import("./commands/serve.js")).serveCommand,
    usage: "pgbind serve <entry> [--manifest w7s.json] [--port 8787] [--host 127.0.0.1] [--watch]",
    summary: "Serve a fetch-handler module (export default { fetch }) over HTTP, env holding the bindings",
  },
  gateway: {
    load: async () => (await import("./commands/gateway.js")).gatewayCommand,
    usage:
      "pgbind gateway [--config gateway.json [--no-watch] | --store postgres://…|local [--control-dir .pgbind/control] | --origin <postgres://…> [--user <name> --password <pw>] [--pool-size 20] [--session]] [--listen 127.0.0.1:6432] [--tls-cert <pem> --tls-key <pem> | --tls-self-signed [--tls-dir .pgbind/gateway]] [--login-timeout-ms 60000] [--admin-user <name>] [--metrics 127.0.0.1:9127] [--log-level info] [--show-password]",
    summary:
      "Run the gateway: a PostgreSQL pooler that authenticates workloads and keeps origin credentials to itself",
  },
  control: {
    load: async () => (await import("./commands/control.js")).controlCommand,
    usage:
      "pgbind control [--listen 127.0.0.1:8788] [--store postgres://…] [--data-dir .pgbind/control] [--gateway-url postgres://127.0.0.1:6432]",
    summary: "Run the control plane: the registry of binding configs and credentials, and its HTTP API",
    details: async () => (await import("./commands/control.js")).CONTROL_HELP,
  },
  configs: {
    load: async () => (await import("./commands/configs.js")).configsCommand,
    usage: "pgbind configs (create <name> | list | get <id> | update <id> | delete <id>) [flags] [--json]",
    summary: "Manage binding configs (origin database, TLS, pool) on the control plane",
    details: async () => (await import("./commands/configs.js")).CONFIGS_HELP,
  },
  credentials: {
    load: async () => (await import("./commands/credentials.js")).credentialsCommand,
    usage:
      "pgbind credentials (create | list | rotate [--grace-seconds 3600] | revoke) <config-id> [<credential-id>] [--json]",
    summary: "Mint, list, rotate and revoke the gateway credentials of a config",
    details: async () => (await import("./commands/credentials.js")).CREDENTIALS_HELP,
  },
  check: {
    load: async () => (await import("./commands/check.js")).checkCommand,
    usage: "pgbind check [dir] [--manifest <file>] [--entry <file>] [--json]",
    summary: "Check a W7S project without running it: w7s.json, the server bundle, its compatibility flags",
  },
  resolve: {
    load: async () => (await import("./commands/resolve.js")).resolveCommand,
    usage: "pgbind resolve <name> [--json]",
    summary:
      "Resolve binding <name> (PGBIND_<NAME>_BINDING or $SERVICE_BINDING_ROOT/<name>/), password masked",
  },
};

function usage(): string {
  // Usage lines are long: each gets its own line, the summary indented below it.
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage}\n      ${c.summary}`);
  return `pgbind — Postgres bindings that resolve into working, correctly secured connections

Usage:
${lines.join("\n")}
  pgbind <command> --help
      Show a command's flags
  pgbind --version
      Print the version

Exit codes: 0 success, 1 the operation failed, 2 bad command line, manifest or project.
`;
}

/** Runs the pgbind command line and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      io.stdout(usage());
      return command === undefined ? EXIT.usage : EXIT.ok;
    case "--version":
    case "-v":
      io.stdout(`${version()}\n`);
      return EXIT.ok;
  }
  const entry = COMMANDS[command];
  if (entry === undefined) {
    io.stderr(
      `pgbind: unknown command "${command}"; commands: ${Object.keys(COMMANDS).join(", ")}, help, --version\n`,
    );
    return EXIT.usage;
  }
  if (rest[0] === "--help" || rest[0] === "-h") {
    const details = entry.details === undefined ? "" : `\n${await entry.details()}\n`;
    io.stdout(`Usage: ${entry.usage}\n\n${entry.summary}\n${details}`);
    return EXIT.ok;
  }
  try {
    return await (await entry.load())(rest, io);
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr(`pgbind ${command}: ${error.message}\n`);
      return error.exitCode;
    }
    throw error;
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}
