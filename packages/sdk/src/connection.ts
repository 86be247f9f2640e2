import type { SslMode } from "./binding.js";

/** TLS settings in node-postgres' shape (`tls.connect` options); `false` means no TLS. */
export type SslConfig =
  | false
  | {
      readonly rejectUnauthorized: boolean;
      /** PEM CA certificate(s) to trust instead of the system store. */
      readonly ca?: string | string[];
      /** Present for verify-ca: the chain is verified, the host name is not. */
      readonly checkServerIdentity?: () => undefined;
    };

/** The fields a connection is built from. */
export interface ConnectionFields {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly username: string;
  readonly password: string;
  readonly sslmode: SslMode;
  readonly ssl: SslConfig;
}

const MASK = "********";
const inspectSymbol = Symbol.for("nodejs.util.inspect.custom");

/**
 * A resolved binding: everything a driver needs, as a URL and as fields.
 *
 * `password` and `connectionString` are readable but not enumerable, and `toJSON`, `toString` and
 * `util.inspect` mask them, so logging or serialising a connection never shows the password.
 */
export class PostgresConnection implements ConnectionFields {
  /** `postgres://user:password@host:port/database?sslmode=…`, percent-encoded; libpq semantics. */
  declare readonly connectionString: string;
  declare readonly password: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly username: string;
  /** The libpq sslmode this connection was resolved with. */
  readonly sslmode: SslMode;
  /** TLS for the driver; for `prefer` it reflects what the server offered when resolved. */
  readonly ssl: SslConfig;

  constructor(fields: ConnectionFields) {
    this.host = fields.host;
    this.port = fields.port;
    this.database = fields.database;
    this.username = fields.username;
    this.sslmode = fields.sslmode;
    this.ssl = fields.ssl;
    Object.defineProperty(this, "password", { value: fields.password, enumerable: false });
    Object.defineProperty(this, "connectionString", {
      value: buildConnectionString(fields, fields.password),
      enumerable: false,
    });
    Object.freeze(this);
  }

  /** The connection string with the password masked, safe to log. */
  get redactedConnectionString(): string {
    return buildConnectionString(this, MASK);
  }

  toJSON(): Record<string, unknown> {
    return {
      connectionString: this.redactedConnectionString,
      host: this.host,
      port: this.port,
      database: this.database,
      username: this.username,
      password: MASK,
      sslmode: this.sslmode,
      ssl: this.ssl,
    };
  }

  toString(): string {
    return this.redactedConnectionString;
  }

  [inspectSymbol](): string {
    return `PostgresConnection ${JSON.stringify(this.toJSON(), null, 2)}`;
  }
}

/** Percent-encodes everything except RFC 3986 unreserved characters (`A–Z a–z 0–9 - . _ ~`). */
export function encodeComponent(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Brackets IPv6 literals (and percent-encodes a zone id) so the host fits in a URL. */
export function formatHost(host: string): string {
  if (!host.includes(":")) return host;
  const [address, zone] = host.split("%", 2);
  return zone === undefined ? `[${address}]` : `[${address}%25${encodeComponent(zone)}]`;
}

function buildConnectionString(fields: Omit<ConnectionFields, "password" | "ssl">, password: string): string {
  const user = encodeComponent(fields.username);
  const pass = password === MASK ? MASK : encodeComponent(password);
  const db = encodeComponent(fields.database);
  return `postgres://${user}:${pass}@${formatHost(fields.host)}:${fields.port}/${db}?sslmode=${fields.sslmode}`;
}

/** Derives node-postgres TLS options from an sslmode (prefer is settled elsewhere, by probing the server). */
export function sslFor(mode: Exclude<SslMode, "prefer">, ca: string | string[] | undefined): SslConfig {
  switch (mode) {
    case "disable":
      return false;
    case "require":
      // libpq: with a root certificate, require behaves like verify-ca.
      return ca === undefined ? { rejectUnauthorized: false } : sslFor("verify-ca", ca);
    case "verify-ca":
      return {
        rejectUnauthorized: true,
        ...(ca === undefined ? {} : { ca }),
        checkServerIdentity: () => undefined,
      };
    case "verify-full":
      return { rejectUnauthorized: true, ...(ca === undefined ? {} : { ca }) };
    default: {
      const exhaustive: never = mode;
      throw new Error(`unhandled sslmode ${String(exhaustive)}`);
    }
  }
}
