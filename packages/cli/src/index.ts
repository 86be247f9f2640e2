import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type BindingEnv, BindingResolver, isPgBindError } from "@pgbind/sdk";

/** Where the CLI writes and what it reads; injectable for tests. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: BindingEnv;
}

/** Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const USAGE = `pgbind — Postgres bindings that resolve into working, correctly secured connections

Usage:
  pgbind resolve <name> [--json]   Resolve binding <name> from PGBIND_<NAME>_BINDING or
                                   $SERVICE_BINDING_ROOT/<name>/ and print it (password masked)
  pgbind --version                 Print the version
  pgbind help                      Show this help
`;

/** Runs the pgbind command line and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      io.stdout(USAGE);
      return command === undefined ? EXIT.usage : EXIT.ok;
    case "--version":
    case "-v":
      io.stdout(`${version()}\n`);
      return EXIT.ok;
    case "resolve":
      return resolveCommand(rest, io);
    default:
      io.stderr(`pgbind: unknown command "${command}"; commands: resolve, help, --version\n`);
      return EXIT.usage;
  }
}

async function resolveCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parseResolveArgs>;
  try {
    parsed = parseResolveArgs(argv);
  } catch (error) {
    io.stderr(`pgbind resolve: ${(error as Error).message}\nUsage: pgbind resolve <name> [--json]\n`);
    return EXIT.usage;
  }
  const name = parsed.positionals[0];
  if (name === undefined || parsed.positionals.length > 1) {
    io.stderr("pgbind resolve: expected exactly one binding name\nUsage: pgbind resolve <name> [--json]\n");
    return EXIT.usage;
  }
  try {
    const conn = await new BindingResolver({ env: io.env }).getPostgresConnection(name);
    if (parsed.values.json) {
      io.stdout(`${JSON.stringify(conn, null, 2)}\n`);
    } else {
      const rows: [string, string][] = [
        ["connection", conn.redactedConnectionString],
        ["host", conn.host],
        ["port", String(conn.port)],
        ["database", conn.database],
        ["username", conn.username],
        ["sslmode", conn.sslmode],
        [
          "tls",
          conn.ssl === false ? "off" : conn.ssl.rejectUnauthorized ? "on, verified" : "on, not verified",
        ],
      ];
      const width = Math.max(...rows.map(([k]) => k.length));
      io.stdout(`${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")}\n`);
    }
    return EXIT.ok;
  } catch (error) {
    if (!isPgBindError(error)) throw error;
    if (parsed.values.json) io.stdout(`${JSON.stringify({ error: error.toJSON() }, null, 2)}\n`);
    io.stderr(`pgbind resolve: ${error.code}${error.retryable ? " (retryable)" : ""}: ${error.message}\n`);
    return EXIT.failed;
  }
}

function parseResolveArgs(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: { json: { type: "boolean" } },
  });
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}
