import {
  type BindingEnv,
  BindingResolver,
  bindingEnvName,
  encodeComponent,
  isPgBindError,
  type PgBindError,
  type PostgresConnection,
} from "@pgbind/sdk";
import { CliError, EXIT } from "../errors.js";
import type { Manifest } from "../manifest.js";

const MASK = "********";
const inspectSymbol = Symbol.for("nodejs.util.inspect.custom");

/**
 * What a backend finds at `env.<BINDING>`: `{ connectionString, host, port, user, password, database }`
 * (the Hyperdrive shape), e.g. `postgres(env.DB.connectionString)`.
 *
 * `password` and `connectionString` are readable but not enumerable (`Object.keys` gives host, port,
 * user, database), and `toJSON`, `toString` and `util.inspect` mask them, so logging `env.DB` never
 * shows the password.
 */
export class BindingEnvObject {
  /** `postgres://user:password@host:port/database?sslmode=…`, percent-encoded; libpq semantics. */
  declare readonly connectionString: string;
  declare readonly password: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly #redacted: string;

  constructor(conn: PostgresConnection) {
    this.host = conn.host;
    this.port = conn.port;
    this.user = conn.username;
    this.database = conn.database;
    this.#redacted = conn.redactedConnectionString;
    Object.defineProperty(this, "connectionString", { value: conn.connectionString, enumerable: false });
    Object.defineProperty(this, "password", { value: conn.password, enumerable: false });
    Object.freeze(this);
  }

  toJSON(): Record<string, unknown> {
    return {
      connectionString: this.#redacted,
      host: this.host,
      port: this.port,
      user: this.user,
      password: MASK,
      database: this.database,
    };
  }

  /** The connection string with the password masked. */
  toString(): string {
    return this.#redacted;
  }

  [inspectSymbol](): string {
    return `Postgres ${JSON.stringify(this.toJSON(), null, 2)}`;
  }
}

/**
 * Resolves every binding the manifest declares into the object the backend gets as `env[binding]`.
 *
 * Today a binding comes from its injected `PGBIND_<NAME>_BINDING` variable (or a Kubernetes Service
 * Binding), as `pgbind dev` provides; this is the seam where resolving manifest ids through a control
 * plane will go. Reports every unavailable binding at once as `BINDING_UNAVAILABLE` (exit 2 when it is
 * missing or malformed, 1 when it exists but its secret or server could not be reached).
 */
export async function resolveManifestBindings(
  manifest: Manifest,
  env: BindingEnv,
): Promise<Record<string, BindingEnvObject>> {
  const resolver = new BindingResolver({ env });
  const resolved: Record<string, BindingEnvObject> = {};
  const problems: string[] = [];
  let exitCode: (typeof EXIT)["usage" | "failed"] = EXIT.usage;
  for (const { binding, id } of manifest.bindings) {
    try {
      resolved[binding] = new BindingEnvObject(await resolver.getPostgresConnection(binding));
    } catch (error) {
      if (!isPgBindError(error)) throw error;
      problems.push(`  ${binding} (id "${id}"): ${explain(error, binding)}`);
      if (error.code !== "BINDING_NOT_FOUND" && error.code !== "INVALID_BINDING_CONFIG")
        exitCode = EXIT.failed;
    }
  }
  if (problems.length > 0) {
    throw new CliError(
      "BINDING_UNAVAILABLE",
      `${manifest.path} declares ${problems.length === 1 ? "a binding" : "bindings"} that could not be resolved:\n${problems.join("\n")}\n` +
        "Run the backend under `pgbind dev`, which starts a database for each binding and injects it " +
        "(e.g. `pgbind dev -- pgbind serve dist/server/index.js`).",
      { exitCode },
    );
  }
  return resolved;
}

function explain(error: PgBindError, binding: string): string {
  switch (error.code) {
    case "BINDING_NOT_FOUND":
      return `${bindingEnvName(binding)} is not set`;
    case "INVALID_BINDING_CONFIG":
    case "POSTGRES_SECRET_RESOLUTION_ERROR":
    case "DATABASE_UNREACHABLE":
      // SDK messages never contain a secret.
      return `${error.code}: ${error.message}`;
    default: {
      const exhaustive: never = error.code;
      return String(exhaustive);
    }
  }
}

/**
 * Every secret text a binding could leak into a log: connection strings and passwords (raw and
 * percent-encoded), longest first so a connection string is masked whole before its password.
 */
export function bindingSecrets(bindings: Readonly<Record<string, BindingEnvObject>>): string[] {
  const secrets = new Set<string>();
  for (const b of Object.values(bindings)) {
    secrets.add(b.connectionString);
    secrets.add(b.password);
    secrets.add(encodeComponent(b.password));
  }
  return [...secrets].filter((s) => s !== "").sort((a, b) => b.length - a.length);
}

/** Replaces each of `secrets` in `text` with `********`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret !== "") out = out.replaceAll(secret, MASK);
  return out;
}
