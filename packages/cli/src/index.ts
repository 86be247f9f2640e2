import { readFileSync } from "node:fs";
import { resolveCommand } from "./commands/resolve.js";
import { CliError, EXIT } from "./errors.js";
import type { CliIo, Command } from "./io.js";

export { CliError, type CliErrorCode, EXIT, type ExitCode } from "./errors.js";
export type { CliIo, Command } from "./io.js";

const COMMANDS: Record<string, { readonly run: Command; readonly usage: string; readonly summary: string }> =
  {
    resolve: {
      run: resolveCommand,
      usage: "pgbind resolve <name> [--json]",
      summary:
        "Resolve binding <name> (PGBIND_<NAME>_BINDING or $SERVICE_BINDING_ROOT/<name>/), password masked",
    },
  };

function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`);
  return `pgbind — Postgres bindings that resolve into working, correctly secured connections

Usage:
${lines.join("\n")}
  ${"pgbind --version".padEnd(width)}  Print the version
  ${"pgbind help".padEnd(width)}  Show this help

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
  try {
    return await entry.run(rest, io);
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
