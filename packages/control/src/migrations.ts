import type pg from "pg";
import { ControlError } from "./errors.js";

/** One schema change of the registry store. Versions only grow; a released migration never changes. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** The registry schema, in order. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "registry",
    sql: `
      CREATE TABLE pgbind.configs (
        id text PRIMARY KEY,
        name text NOT NULL UNIQUE,
        origin_host text NOT NULL,
        origin_port integer NOT NULL CHECK (origin_port BETWEEN 1 AND 65535),
        origin_database text NOT NULL,
        origin_user text NOT NULL,
        -- AES-256-GCM under the master key, bound to the row's id (see secret-box.ts); never plaintext.
        origin_password bytea NOT NULL,
        sslmode text NOT NULL CHECK (sslmode IN ('disable', 'prefer', 'require', 'verify-ca', 'verify-full')),
        sslrootcert text,
        pool_mode text NOT NULL CHECK (pool_mode IN ('transaction', 'session')),
        pool_size integer NOT NULL CHECK (pool_size > 0),
        timeouts jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE pgbind.credentials (
        id text PRIMARY KEY,
        config_id text NOT NULL REFERENCES pgbind.configs (id) ON DELETE CASCADE,
        user_name text NOT NULL UNIQUE,
        scram_verifier text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz,
        revoked_at timestamptz
      );
      CREATE INDEX credentials_config_id ON pgbind.credentials (config_id, created_at DESC);
      CREATE TABLE pgbind.api_tokens (
        id text PRIMARY KEY,
        token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
      );
      -- Small facts about the store, e.g. a value sealed with the master key to detect a wrong key at start.
      CREATE TABLE pgbind.meta (
        key text PRIMARY KEY,
        value bytea NOT NULL
      );
    `,
  },
];

// An arbitrary constant shared by every pgbind version: the advisory lock serialising migrations.
const MIGRATION_LOCK = 0x7067_6269_6e64;

/**
 * Brings the store's `pgbind` schema up to date, in one transaction under an advisory lock, so several
 * control planes starting at once on one store are safe (the others wait, then find nothing to do).
 * Idempotent. Refuses a store migrated by a newer pgbind. Returns the versions it applied.
 */
export async function migrate(
  pool: pg.Pool,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number[]> {
  const client = await pool.connect();
  let release: Error | undefined;
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await client.query("CREATE SCHEMA IF NOT EXISTS pgbind");
    await client.query(`
      CREATE TABLE IF NOT EXISTS pgbind.schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const { rows } = await client.query<{ version: number }>("SELECT version FROM pgbind.schema_migrations");
    const applied = new Set(rows.map((r) => r.version));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...applied].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      throw new ControlError(
        "STORE_SCHEMA_TOO_NEW",
        `the registry store has schema version ${Math.max(...unknown)}, newer than this pgbind knows (${Math.max(0, ...known)}); upgrade pgbind`,
      );
    }
    const done: number[] = [];
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query("INSERT INTO pgbind.schema_migrations (version, name) VALUES ($1, $2)", [
        migration.version,
        migration.name,
      ]);
      done.push(migration.version);
    }
    await client.query("COMMIT");
    return done;
  } catch (error) {
    await client.query("ROLLBACK").catch((rollbackError: Error) => {
      release = rollbackError;
    });
    throw error;
  } finally {
    client.release(release);
  }
}
