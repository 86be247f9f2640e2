import { parseArgs } from "node:util";
import { BindingResolver, isPgBindError } from "@pgbind/sdk";
import { EXIT } from "../errors.js";
import type { Command } from "../io.js";

export const RESOLVE_USAGE = "pgbind resolve <name> [--json]";

/** `pgbind resolve <name>`: resolves a binding from the environment and prints it, password masked. */
export const resolveCommand: Command = async (argv, io) => {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.stderr(`pgbind resolve: ${(error as Error).message}\nUsage: ${RESOLVE_USAGE}\n`);
    return EXIT.usage;
  }
  const name = parsed.positionals[0];
  if (name === undefined || parsed.positionals.length > 1) {
    io.stderr(`pgbind resolve: expected exactly one binding name\nUsage: ${RESOLVE_USAGE}\n`);
    return EXIT.usage;
  }
  try {
    const conn = await new BindingResolver({ env: io.env }).getPostgresConnection(name);
    if (parsed.values.json) {
      io.stdout(`${JSON.stringify(conn, null, 2)}\n`);
      return EXIT.ok;
    }
    const tls =
      conn.ssl === false ? "off" : conn.ssl.rejectUnauthorized ? "on, verified" : "on, not verified";
    const rows: [string, string][] = [
      ["connection", conn.redactedConnectionString],
      ["host", conn.host],
      ["port", String(conn.port)],
      ["database", conn.database],
      ["username", conn.username],
      ["sslmode", conn.sslmode],
      ["tls", tls],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    io.stdout(`${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")}\n`);
    return EXIT.ok;
  } catch (error) {
    if (!isPgBindError(error)) throw error;
    if (parsed.values.json) io.stdout(`${JSON.stringify({ error: error.toJSON() }, null, 2)}\n`);
    io.stderr(`pgbind resolve: ${error.code}${error.retryable ? " (retryable)" : ""}: ${error.message}\n`);
    return EXIT.failed;
  }
};

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: { json: { type: "boolean" } },
  });
}
