import type { PostgresConnection, SslConfig } from "./connection.js";

/**
 * The node-postgres `ClientConfig`/`PoolConfig` fields pgbind sets. Declared structurally so the SDK
 * does not depend on `pg`'s types.
 */
export interface PgClientConfig {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  ssl: SslConfig;
  connectionTimeoutMillis: number;
  keepAlive: boolean;
}

/** The postgres.js options pgbind sets, declared structurally. */
export interface PostgresJsOptions {
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
  ssl: SslConfig;
  connect_timeout: number;
}

/** A managed database may be waking from auto-pause: give the first connection time. */
const CONNECT_TIMEOUT_MS = 30_000;

/**
 * node-postgres config: individual fields plus `ssl`, never a URL, so pg cannot reinterpret the
 * URL's `sslmode` (it treats `require` as verify-full and would override `ssl`).
 *
 * @example
 * const pool = new pg.Pool({ ...pgConfig(await getPostgresConnection("db")), max: 10 });
 */
export function pgConfig(conn: PostgresConnection): PgClientConfig {
  const config = {
    host: conn.host,
    port: conn.port,
    database: conn.database,
    user: conn.username,
    ssl: conn.ssl,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
  } as PgClientConfig;
  // Hidden from console.log/JSON, still read by pg.
  Object.defineProperty(config, "password", { value: conn.password, enumerable: false, writable: true });
  return config;
}

/**
 * postgres.js options.
 *
 * @example
 * const sql = postgres(postgresOptions(await getPostgresConnection("db")));
 */
export function postgresOptions(conn: PostgresConnection): PostgresJsOptions {
  const options = {
    host: conn.host,
    port: conn.port,
    database: conn.database,
    username: conn.username,
    ssl: conn.ssl,
    connect_timeout: CONNECT_TIMEOUT_MS / 1000,
  } as PostgresJsOptions;
  Object.defineProperty(options, "password", { value: conn.password, enumerable: false, writable: true });
  return options;
}
