import { LocalPostgres, LocalPostgresError } from "@pgbind/local-postgres";
import { bindingEnvName } from "@pgbind/sdk";
import pg from "pg";
import { CliError } from "../errors.js";
import type { ManifestBinding } from "../manifest.js";
import { type DevPaths, type DevState, dataDirFor } from "./state.js";

/** A binding of the manifest, served by the local database. */
export interface LocalBinding {
  readonly binding: string;
  readonly id: string;
  readonly database: string;
  /** `PGBIND_<NAME>_BINDING` */
  readonly variable: string;
  /** The JSON value of that variable (a `local` binding). */
  readonly value: string;
}

/** Database name for a manifest binding: `DB` → `db`, `ORDERS_DB` → `orders_db`. */
export function databaseFor(binding: string): string {
  return binding.toLowerCase();
}

/** Starts (initialising on first use) the project's PostgreSQL on its remembered port. */
export async function startCluster(
  paths: DevPaths,
  state: DevState,
  onProgress: (message: string) => void,
): Promise<LocalPostgres> {
  const dataDir = await dataDirFor(paths);
  try {
    return await LocalPostgres.start({
      dataDir,
      password: state.password,
      port: state.port,
      onInitialise: () => onProgress("initialising a new PostgreSQL cluster in .pgbind/ (first run only) …"),
    });
  } catch (error) {
    if (!(error instanceof LocalPostgresError)) throw error;
    const hint =
      error.code === "PORT_IN_USE"
        ? `port ${state.port} (remembered in ${paths.stateFile} so connection strings stay stable) is taken by another process; stop that process, or run \`pgbind dev --fresh\` to start over on a new port (deletes local data)`
        : error.code === "START_FAILED" && /postmaster\.pid/.test(error.message)
          ? "another `pgbind dev` seems to be running for this project; stop it first"
          : "see the server log above; `pgbind dev --fresh` starts over (deletes local data)";
    throw new CliError("DATABASE_START_FAILED", `PostgreSQL did not start: ${hint}\n${error.message}`, {
      cause: error,
    });
  }
}

/** Creates one database per binding (if missing) and returns the variables to inject. */
export async function prepareBindings(
  server: LocalPostgres,
  state: DevState,
  bindings: readonly ManifestBinding[],
): Promise<LocalBinding[]> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.user,
    password: state.password,
    database: "postgres",
  });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>("select datname from pg_database");
    const existing = new Set(rows.map((r) => r.datname));
    const result: LocalBinding[] = [];
    for (const { binding, id } of bindings) {
      const database = databaseFor(binding);
      if (!existing.has(database)) {
        await client.query(`create database ${client.escapeIdentifier(database)}`);
        existing.add(database);
      }
      const value = JSON.stringify({
        service: "local",
        host: server.host,
        port: server.port,
        database,
        username: server.user,
        password: state.password,
      });
      result.push({ binding, id, database, variable: bindingEnvName(binding), value });
    }
    return result;
  } finally {
    await client.end();
  }
}
