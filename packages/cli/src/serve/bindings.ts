import {
  type BindingEnv,
  BindingResolver,
  bindingEnvName,
  encodeComponent,
  isPgBindError,
  type PgBindError,
  type PostgresConnection,
} from "@pgbind/sdk";
import { ControlClient } from "../control/client.js";
import { type ControlFlags, discoverControl } from "../control/discovery.js";
import { ControlBindingResolver } from "../control/resolve.js";
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

/** How {@link resolveManifestBindings} may reach a control plane for bindings nobody injected. */
export interface ResolveBindingsOptions {
  /** Where `.pgbind/control/` (control.json, cached credentials) is looked for. */
  readonly cwd: string;
  /** `--control-url`/`--token` if the command takes them; else the environment and control.json decide. */
  readonly control?: ControlFlags;
  /** One line per binding resolved through the control plane (never a secret). */
  readonly log?: (message: string) => void;
}

/** The resolved bindings, and the variables to inject for those that came from the control plane. */
export interface ResolvedBindings {
  readonly env: Record<string, BindingEnvObject>;
  /** `PGBIND_<NAME>_BINDING` → gateway binding JSON, for each binding resolved through the control plane. */
  readonly injected: Record<string, string>;
  /** The bindings resolved through the control plane, and the resolver, for following credential rotations. */
  readonly fromControl: readonly { readonly binding: string; readonly id: string; credentialId: string }[];
  readonly control: ControlBindingResolver | undefined;
}

/**
 * Resolves every binding the manifest declares into the object the backend gets as `env[binding]`.
 *
 * For each binding, in order: its injected `PGBIND_<NAME>_BINDING` variable (or a Kubernetes Service
 * Binding), as `pgbind dev` provides; otherwise, when a control plane is configured
 * (`PGBIND_CONTROL_URL`) or discovered (`.pgbind/control/control.json`), the manifest `id` is looked
 * up there and resolved into a `gateway` binding with a credential minted once and cached. Reports
 * every unavailable binding at once as `BINDING_UNAVAILABLE` (exit 2 when it is missing, malformed or
 * unknown to the control plane, 1 when something could not be reached).
 */
export async function resolveManifestBindings(
  manifest: Manifest,
  env: BindingEnv,
  options?: ResolveBindingsOptions,
): Promise<Record<string, BindingEnvObject>> {
  return (await resolveBindings(manifest, env, options)).env;
}

/** {@link resolveManifestBindings}, also returning the variables to inject into a process. */
export async function resolveBindings(
  manifest: Manifest,
  env: BindingEnv,
  options?: ResolveBindingsOptions,
): Promise<ResolvedBindings> {
  const resolver = new BindingResolver({ env });
  const resolved: Record<string, BindingEnvObject> = {};
  const injected: Record<string, string> = {};
  const fromControl: { binding: string; id: string; credentialId: string }[] = [];
  const problems: string[] = [];
  let missing = false;
  let exitCode: (typeof EXIT)["usage" | "failed"] = EXIT.usage;
  let control: Promise<ControlBindingResolver | undefined> | undefined;
  for (const { binding, id } of manifest.bindings) {
    try {
      resolved[binding] = new BindingEnvObject(await resolver.getPostgresConnection(binding));
      continue;
    } catch (error) {
      if (!isPgBindError(error)) throw error;
      if (error.code !== "BINDING_NOT_FOUND" || options === undefined) {
        problems.push(`  ${binding} (id "${id}"): ${explain(error, binding)}`);
        if (error.code === "BINDING_NOT_FOUND") missing = true;
        else if (error.code !== "INVALID_BINDING_CONFIG") exitCode = EXIT.failed;
        continue;
      }
    }
    // Nobody injected it: ask the control plane, if there is one.
    try {
      control ??= findControlResolver(env, options);
      const plane = await control;
      if (plane === undefined) {
        problems.push(
          `  ${binding} (id "${id}"): ${bindingEnvName(binding)} is not set, and no control plane is configured`,
        );
        missing = true;
        continue;
      }
      const found = await plane.resolve(binding, id);
      resolved[binding] = new BindingEnvObject(found.connection);
      injected[found.variable] = found.value;
      fromControl.push({ binding, id, credentialId: found.credentialId });
    } catch (error) {
      if (!(error instanceof CliError)) throw error;
      problems.push(`  ${binding} (id "${id}"): ${error.message}`);
      if (error.exitCode === EXIT.failed) exitCode = EXIT.failed;
    }
  }
  if (problems.length > 0) {
    throw new CliError(
      "BINDING_UNAVAILABLE",
      `${manifest.path} declares ${problems.length === 1 ? "a binding" : "bindings"} that could not be resolved:\n${problems.join("\n")}` +
        (missing
          ? "\nRun the backend under `pgbind dev`, which starts a database for each binding and injects it " +
            "(e.g. `pgbind dev -- pgbind serve dist/server/index.js`), or point PGBIND_CONTROL_URL at a " +
            "control plane (`pgbind control`) that knows the ids."
          : ""),
      { exitCode },
    );
  }
  return { env: resolved, injected, fromControl, control: await control };
}

/** The control plane configured in `env` or discovered under `options.cwd`, or undefined. */
export async function findControlResolver(
  env: BindingEnv,
  options: ResolveBindingsOptions,
): Promise<ControlBindingResolver | undefined> {
  const io = { env, cwd: options.cwd, stdout: () => {}, stderr: () => {} };
  const target = await discoverControl(options.control ?? {}, io);
  if (target === undefined) return undefined;
  return new ControlBindingResolver(new ControlClient(target), options.cwd, options.log);
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
