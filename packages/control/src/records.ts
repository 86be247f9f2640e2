import type { OriginSslMode, PoolMode, Timeouts } from "@pgbind/gateway";
import { DEFAULT_TIMEOUTS } from "@pgbind/gateway";
import { ControlError } from "./errors.js";
import { CONFIG_ID } from "./ids.js";
import type { OriginSettings } from "./validation.js";

// The registry's rows and their API form (which never holds a secret).

/** A config as the API shows it: never the origin password. */
export interface Config {
  readonly id: string;
  readonly name: string;
  readonly origin: {
    readonly host: string;
    readonly port: number;
    readonly database: string;
    readonly user: string;
    readonly sslmode: OriginSslMode;
    readonly sslrootcert?: string;
  };
  readonly poolMode: PoolMode;
  readonly poolSize: number;
  readonly timeouts: Timeouts;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** `active`; `expiring` during a rotation grace period; `revoked`; `expired` after it. */
export type CredentialStatus = "active" | "expiring" | "revoked" | "expired";

/** A credential as the API shows it: never its password (only the mint response has that). */
export interface Credential {
  readonly id: string;
  readonly configId: string;
  readonly user: string;
  readonly status: CredentialStatus;
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
}

/** A newly minted credential and its password, which is never available again. */
export interface MintedCredential {
  readonly credential: Credential;
  readonly password: string;
}

export const CONFIG_COLUMNS = `id, name, origin_host, origin_port, origin_database, origin_user, sslmode, sslrootcert,
  pool_mode, pool_size, timeouts, created_at, updated_at`;
export const CREDENTIAL_COLUMNS = `id, config_id, user_name, created_at, expires_at, revoked_at,
  CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
       WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 'expired'
       WHEN expires_at IS NOT NULL THEN 'expiring'
       ELSE 'active' END AS status`;
export interface ConfigRow {
  id: string;
  name: string;
  origin_host: string;
  origin_port: number;
  origin_database: string;
  origin_user: string;
  sslmode: OriginSslMode;
  sslrootcert: string | null;
  pool_mode: PoolMode;
  pool_size: number;
  timeouts: Partial<Timeouts>;
  created_at: Date;
  updated_at: Date;
}

export interface CredentialRow {
  id: string;
  config_id: string;
  user_name: string;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  status: CredentialStatus;
}

export function originOf(row: ConfigRow, password: () => string): OriginSettings {
  return {
    host: row.origin_host,
    port: row.origin_port,
    database: row.origin_database,
    user: row.origin_user,
    password: password(),
    sslmode: row.sslmode,
    ...(row.sslrootcert !== null ? { sslrootcert: row.sslrootcert } : {}),
  };
}

export function sameOrigin(a: OriginSettings, b: OriginSettings): boolean {
  return (
    a.host === b.host &&
    a.port === b.port &&
    a.database === b.database &&
    a.user === b.user &&
    a.sslmode === b.sslmode &&
    a.sslrootcert === b.sslrootcert
  );
}

export function toConfig(row: ConfigRow): Config {
  return {
    id: row.id,
    name: row.name,
    origin: {
      host: row.origin_host,
      port: row.origin_port,
      database: row.origin_database,
      user: row.origin_user,
      sslmode: row.sslmode,
      ...(row.sslrootcert !== null ? { sslrootcert: row.sslrootcert } : {}),
    },
    poolMode: row.pool_mode,
    poolSize: row.pool_size,
    timeouts: { ...DEFAULT_TIMEOUTS, ...row.timeouts },
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export function toCredential(row: CredentialRow): Credential {
  return {
    id: row.id,
    configId: row.config_id,
    user: row.user_name,
    status: row.status,
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at?.toISOString() ?? null,
    revokedAt: row.revoked_at?.toISOString() ?? null,
  };
}

export function checkConfigId(id: string): void {
  if (!CONFIG_ID.test(id)) throw configNotFound(id);
}

export function configNotFound(id: string): ControlError {
  return new ControlError("NOT_FOUND", `no config with id ${JSON.stringify(id.slice(0, 100))}`);
}

export function credentialNotFound(id: string, configId: string): ControlError {
  return new ControlError(
    "NOT_FOUND",
    `no credential with id ${JSON.stringify(id.slice(0, 100))} in config ${JSON.stringify(configId)}`,
  );
}

export function nameConflict(error: unknown, name: string): unknown {
  const pgError = error as { code?: string; constraint?: string };
  if (pgError.code === "23505" && pgError.constraint === "configs_name_key") {
    return new ControlError("CONFLICT", `a config named "${name}" already exists`);
  }
  return error;
}
