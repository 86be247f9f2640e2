/** libpq sslmode values the gateway supports towards an origin. */
export const ORIGIN_SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"] as const;
export type OriginSslMode = (typeof ORIGIN_SSL_MODES)[number];

export const POOL_MODES = ["transaction", "session"] as const;
export type PoolMode = (typeof POOL_MODES)[number];

/** A credential a workload presents to the gateway. Only the SCRAM verifier is stored, never the password. */
export interface ClientCredential {
  readonly user: string;
  /** `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as PostgreSQL stores it. */
  readonly scramVerifier: string;
  /** After this instant the credential is refused (rotation grace periods end this way). */
  readonly expiresAt?: Date;
}

/** The real database behind a binding. The workload never learns these credentials. */
export interface OriginConfig {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly sslmode: OriginSslMode;
  /** PEM CA bundle for verify-ca / verify-full. */
  readonly sslrootcert?: string;
}

/** Timeouts in milliseconds; 0 disables one. */
export interface Timeouts {
  /** Total time to get a connection to the origin, retrying with backoff (an auto-paused database can take 20 s). */
  readonly connectMs: number;
  /** How long a client waits for a pooled server connection before 53300. */
  readonly queryWaitMs: number;
  /** Close clients idle (outside a transaction) this long. */
  readonly idleClientMs: number;
  /** Close pooled server connections idle this long. */
  readonly idleServerMs: number;
  /** Retire server connections this old once they are idle. */
  readonly serverLifetimeMs: number;
}

/** One binding served by the gateway. */
export interface BindingConfig {
  /** Stable identifier (the control plane's config id, or a name from the file). */
  readonly id: string;
  /** The database name clients put in their startup message. */
  readonly database: string;
  readonly credentials: readonly ClientCredential[];
  readonly origin: OriginConfig;
  readonly poolMode: PoolMode;
  /** Server connections per binding. */
  readonly poolSize: number;
  readonly timeouts: Timeouts;
}

/** Everything a gateway process serves, as produced by a {@link ConfigSource}. */
export interface GatewayConfig {
  readonly bindings: readonly BindingConfig[];
  /**
   * Gateway-wide: a client must finish start-up and authentication within this many ms, or gets FATAL
   * 57014. Unset means the gateway's own setting ({@link DEFAULT_LOGIN_TIMEOUT_MS} unless given in code
   * or on the command line, which win over this).
   */
  readonly loginTimeoutMs?: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  connectMs: 30_000,
  queryWaitMs: 30_000,
  idleClientMs: 0,
  idleServerMs: 600_000,
  serverLifetimeMs: 3_600_000,
};
export const DEFAULT_POOL_SIZE = 20;
/** As PgBouncer's client_login_timeout. */
export const DEFAULT_LOGIN_TIMEOUT_MS = 60_000;
/** The longest any timeout may be set to: 7 days. */
export const MAX_TIMEOUT_MS = 7 * 24 * 3_600_000;

/** A config that failed validation; `problems` name each JSON path and what is valid. */
export class GatewayConfigError extends Error {
  readonly code = "INVALID_GATEWAY_CONFIG";
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[]) {
    super(`${source}: invalid gateway config:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "GatewayConfigError";
    this.problems = problems;
  }
}

const SCRAM_VERIFIER = /^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/;
const IDENTIFIER = /^[^\0]{1,63}$/;

/**
 * Validates a decoded config document (the file format, see the README) and fills in defaults.
 * Reports every problem at once; never echoes an origin password.
 */
export function parseGatewayConfig(
  value: unknown,
  source: string,
  env: Readonly<Record<string, string | undefined>> = {},
): GatewayConfig {
  const problems: string[] = [];
  const bindings: BindingConfig[] = [];
  if (!isObject(value))
    throw new GatewayConfigError(source, ['(root): must be an object like {"bindings": [...]}']);
  checkKeys(value, "", ["$schema", "bindings", "loginTimeoutMs"], problems);
  // Unlike the per-binding timeouts, 0 cannot mean "off": a login must end some time.
  const loginTimeoutMs =
    value.loginTimeoutMs === undefined
      ? undefined
      : int(value.loginTimeoutMs, "loginTimeoutMs", 1, MAX_TIMEOUT_MS, problems);
  const list = value.bindings;
  if (!Array.isArray(list)) problems.push("bindings: must be an array of binding objects");
  const seenIds = new Map<string, string>();
  const seenDatabases = new Map<string, string>();
  for (const [i, item] of (Array.isArray(list) ? list : []).entries()) {
    const at = `bindings[${i}]`;
    const binding = parseBinding(item, at, env, problems);
    if (!binding) continue;
    for (const [seen, key, label] of [
      [seenIds, binding.id, "id"],
      [seenDatabases, binding.database, "database"],
    ] as const) {
      const previous = seen.get(key);
      if (previous) problems.push(`${at}.${label}: "${key}" is also used by ${previous}`);
      else seen.set(key, at);
    }
    bindings.push(binding);
  }
  if (problems.length > 0) throw new GatewayConfigError(source, problems);
  return loginTimeoutMs === undefined ? { bindings } : { bindings, loginTimeoutMs };
}

function parseBinding(
  item: unknown,
  at: string,
  env: Readonly<Record<string, string | undefined>>,
  problems: string[],
): BindingConfig | undefined {
  if (!isObject(item)) {
    problems.push(`${at}: must be an object with id, database, credentials and origin`);
    return undefined;
  }
  const before = problems.length;
  checkKeys(
    item,
    at,
    ["id", "database", "credentials", "origin", "poolMode", "poolSize", "timeouts"],
    problems,
  );
  const id = str(item.id, `${at}.id`, problems);
  const database = str(item.database, `${at}.database`, problems, IDENTIFIER);
  const credentials = parseCredentials(item.credentials, `${at}.credentials`, problems);
  const origin = parseOrigin(item.origin, `${at}.origin`, env, problems);
  const poolMode =
    item.poolMode === undefined
      ? "transaction"
      : oneOf(item.poolMode, `${at}.poolMode`, POOL_MODES, problems);
  const poolSize =
    item.poolSize === undefined
      ? DEFAULT_POOL_SIZE
      : int(item.poolSize, `${at}.poolSize`, 1, 10_000, problems);
  const timeouts = parseTimeouts(item.timeouts, `${at}.timeouts`, problems);
  if (problems.length > before) return undefined;
  return {
    id: id as string,
    database: database as string,
    credentials: credentials as ClientCredential[],
    origin: origin as OriginConfig,
    poolMode: poolMode as PoolMode,
    poolSize: poolSize as number,
    timeouts,
  };
}

function parseCredentials(value: unknown, at: string, problems: string[]): ClientCredential[] | undefined {
  if (!Array.isArray(value) || value.length === 0) {
    problems.push(`${at}: must be a non-empty array of {"user": "…", "scramVerifier": "SCRAM-SHA-256$…"}`);
    return undefined;
  }
  const result: ClientCredential[] = [];
  for (const [i, item] of value.entries()) {
    const path = `${at}[${i}]`;
    if (!isObject(item)) {
      problems.push(`${path}: must be an object with user and scramVerifier`);
      continue;
    }
    checkKeys(item, path, ["user", "scramVerifier", "expiresAt"], problems);
    const user = str(item.user, `${path}.user`, problems, IDENTIFIER);
    const scramVerifier = item.scramVerifier;
    if (typeof scramVerifier !== "string" || !SCRAM_VERIFIER.test(scramVerifier)) {
      // A plaintext password here would be a secret at rest: say so without echoing it.
      problems.push(
        `${path}.scramVerifier: must be a SCRAM-SHA-256 verifier ("SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>"), never a password (the format PostgreSQL stores in pg_authid.rolpassword)`,
      );
      continue;
    }
    let expiresAt: Date | undefined;
    if (item.expiresAt !== undefined) {
      expiresAt = typeof item.expiresAt === "string" ? new Date(item.expiresAt) : undefined;
      if (!expiresAt || Number.isNaN(expiresAt.getTime())) {
        problems.push(`${path}.expiresAt: must be an ISO 8601 date-time, e.g. "2026-12-01T00:00:00Z"`);
        continue;
      }
    }
    if (user !== undefined) result.push({ user, scramVerifier, ...(expiresAt ? { expiresAt } : {}) });
  }
  return result;
}

function parseOrigin(
  value: unknown,
  at: string,
  env: Readonly<Record<string, string | undefined>>,
  problems: string[],
): OriginConfig | undefined {
  if (!isObject(value)) {
    problems.push(`${at}: must be an object with host, port, database, user and password (or passwordEnv)`);
    return undefined;
  }
  const before = problems.length;
  checkKeys(
    value,
    at,
    ["host", "port", "database", "user", "password", "passwordEnv", "sslmode", "sslrootcert"],
    problems,
  );
  const host = str(value.host, `${at}.host`, problems);
  const port = value.port === undefined ? 5432 : int(value.port, `${at}.port`, 1, 65535, problems);
  const database = str(value.database, `${at}.database`, problems, IDENTIFIER);
  const user = str(value.user, `${at}.user`, problems, IDENTIFIER);
  let password: string | undefined;
  if (value.password !== undefined && value.passwordEnv !== undefined) {
    problems.push(`${at}: give password or passwordEnv, not both`);
  } else if (value.passwordEnv !== undefined) {
    const name = str(value.passwordEnv, `${at}.passwordEnv`, problems);
    password = name === undefined ? undefined : env[name];
    if (name !== undefined && !password)
      problems.push(`${at}.passwordEnv: the environment variable ${name} is not set or empty`);
  } else if (typeof value.password === "string" && value.password !== "") {
    password = value.password;
  } else {
    problems.push(
      `${at}.password: must be a non-empty string (or use passwordEnv to read it from the environment)`,
    );
  }
  const sslmode =
    value.sslmode === undefined
      ? "prefer"
      : oneOf(value.sslmode, `${at}.sslmode`, ORIGIN_SSL_MODES, problems);
  let sslrootcert: string | undefined;
  if (value.sslrootcert !== undefined) {
    if (typeof value.sslrootcert !== "string" || !value.sslrootcert.includes("-----BEGIN CERTIFICATE-----")) {
      problems.push(`${at}.sslrootcert: must be a PEM certificate bundle`);
    } else sslrootcert = value.sslrootcert;
  }
  if (problems.length > before) return undefined;
  return {
    host: host as string,
    port: port as number,
    database: database as string,
    user: user as string,
    password: password as string,
    sslmode: sslmode as OriginSslMode,
    ...(sslrootcert ? { sslrootcert } : {}),
  };
}

function parseTimeouts(value: unknown, at: string, problems: string[]): Timeouts {
  if (value === undefined) return DEFAULT_TIMEOUTS;
  if (!isObject(value)) {
    problems.push(`${at}: must be an object of millisecond values, e.g. {"queryWaitMs": 30000}`);
    return DEFAULT_TIMEOUTS;
  }
  const keys = Object.keys(DEFAULT_TIMEOUTS) as (keyof Timeouts)[];
  checkKeys(value, at, keys, problems);
  const result: Record<string, number> = { ...DEFAULT_TIMEOUTS };
  for (const key of keys) {
    if (value[key] === undefined) continue;
    const ms = int(value[key], `${at}.${key}`, 0, MAX_TIMEOUT_MS, problems);
    if (ms !== undefined) result[key] = ms;
  }
  return result as unknown as Timeouts;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkKeys(
  value: Record<string, unknown>,
  at: string,
  allowed: readonly string[],
  problems: string[],
) {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key))
      problems.push(`${at ? `${at}.` : ""}${key}: unknown key; allowed: ${allowed.join(", ")}`);
  }
}

function str(value: unknown, at: string, problems: string[], pattern?: RegExp): string | undefined {
  if (typeof value !== "string" || value.trim() === "") {
    problems.push(`${at}: must be a non-empty string`);
    return undefined;
  }
  if (pattern && !pattern.test(value)) {
    problems.push(`${at}: ${quoteSafely(value)} is not valid (at most 63 characters, no NUL)`);
    return undefined;
  }
  return value;
}

/**
 * Quotes a rejected value only when it looks like a mistyped word: a password pasted into the wrong
 * field must not reach a log through a validation message.
 */
function quoteSafely(value: string): string {
  return /^[A-Za-z0-9_.-]{1,32}$/.test(value)
    ? JSON.stringify(value)
    : `the value (${value.length} characters, not shown)`;
}

function int(value: unknown, at: string, min: number, max: number, problems: string[]): number | undefined {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    problems.push(`${at}: ${JSON.stringify(value)} is not valid; expected an integer from ${min} to ${max}`);
    return undefined;
  }
  return value;
}

function oneOf<T extends string>(
  value: unknown,
  at: string,
  allowed: readonly T[],
  problems: string[],
): T | undefined {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    problems.push(
      `${at}: ${typeof value === "string" ? quoteSafely(value) : JSON.stringify(value)} is not valid; use one of ${allowed.join(", ")}`,
    );
    return undefined;
  }
  return value as T;
}
