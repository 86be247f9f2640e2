import { X509Certificate } from "node:crypto";
import {
  DEFAULT_POOL_SIZE,
  DEFAULT_TIMEOUTS,
  ORIGIN_SSL_MODES,
  type OriginSslMode,
  POOL_MODES,
  type PoolMode,
  type Timeouts,
} from "@pgbind/gateway";
import { parseConnectionString } from "./connection-string.js";
import { invalidRequest, type Problem } from "./errors.js";

/** The origin of a config as stored, password included (it never leaves the registry unencrypted except to gateways). */
export interface OriginSettings {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly sslmode: OriginSslMode;
  readonly sslrootcert?: string;
}

/** A validated create body: everything a config holds. */
export interface ConfigSettings {
  readonly name: string;
  readonly origin: OriginSettings;
  readonly poolMode: PoolMode;
  readonly poolSize: number;
  readonly timeouts: Timeouts;
}

/** A validated PATCH body. `origin` merges field by field (`sslrootcert: null` removes it); `replaceOrigin` (from `connectionString`) replaces it. */
export interface ConfigChanges {
  readonly name?: string;
  readonly origin?: Partial<Omit<OriginSettings, "sslrootcert">> & { readonly sslrootcert?: string | null };
  readonly replaceOrigin?: OriginSettings;
  readonly poolMode?: PoolMode;
  readonly poolSize?: number;
  readonly timeouts?: Partial<Timeouts>;
}

/** The JSON body of `POST /v1/configs`: `origin` or `connectionString` (with it, `origin` may hold only `sslrootcert`). */
export interface ConfigCreateBody {
  name: string;
  origin?: {
    host?: string;
    port?: number;
    database?: string;
    user?: string;
    password?: string;
    sslmode?: OriginSslMode;
    sslrootcert?: string | null;
  };
  connectionString?: string;
  poolMode?: PoolMode;
  poolSize?: number;
  timeouts?: Partial<Timeouts>;
}

/** The JSON body of `PATCH /v1/configs/:id`: any subset of the create body. */
export type ConfigPatchBody = Partial<ConfigCreateBody>;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const TOP_KEYS = ["name", "origin", "connectionString", "poolMode", "poolSize", "timeouts"];
const ORIGIN_KEYS = ["host", "port", "database", "user", "password", "sslmode", "sslrootcert"];
const TIMEOUT_KEYS = Object.keys(DEFAULT_TIMEOUTS) as (keyof Timeouts)[];
const MAX_TIMEOUT_MS = 7 * 24 * 3_600_000;
const MAX_POOL_SIZE = 10_000;
const MAX_PEM = 256 * 1024;

/** Validates a create body; throws `INVALID_REQUEST` naming every problem. Fills in defaults. */
export function validateCreate(body: unknown): ConfigSettings {
  const problems: Problem[] = [];
  const v = new Checker(problems);
  if (!isObject(body)) throw invalidRequest([{ field: "(root)", message: "must be a JSON object" }]);
  v.keys(body, "", TOP_KEYS);
  const name = v.name(body.name, true);
  const origin = v.originOf(body, true);
  const poolMode = v.oneOf(body.poolMode, "poolMode", POOL_MODES);
  const poolSize = v.int(body.poolSize, "poolSize", 1, MAX_POOL_SIZE);
  const timeouts = v.timeouts(body.timeouts);
  if (problems.length > 0) throw invalidRequest(problems);
  return {
    name: name as string,
    origin: origin?.replace as OriginSettings,
    poolMode: poolMode ?? "transaction",
    poolSize: poolSize ?? DEFAULT_POOL_SIZE,
    timeouts: { ...DEFAULT_TIMEOUTS, ...timeouts },
  };
}

/** Validates a PATCH body; throws `INVALID_REQUEST` naming every problem. */
export function validatePatch(body: unknown): ConfigChanges {
  const problems: Problem[] = [];
  const v = new Checker(problems);
  if (!isObject(body)) throw invalidRequest([{ field: "(root)", message: "must be a JSON object" }]);
  v.keys(body, "", TOP_KEYS);
  const name = v.name(body.name, false);
  const origin = v.originOf(body, false);
  const poolMode = v.oneOf(body.poolMode, "poolMode", POOL_MODES);
  const poolSize = v.int(body.poolSize, "poolSize", 1, MAX_POOL_SIZE);
  const timeouts = v.timeouts(body.timeouts);
  if (problems.length > 0) throw invalidRequest(problems);
  return {
    ...(name !== undefined ? { name } : {}),
    ...(origin?.replace ? { replaceOrigin: origin.replace } : {}),
    ...(origin?.merge ? { origin: origin.merge } : {}),
    ...(poolMode !== undefined ? { poolMode } : {}),
    ...(poolSize !== undefined ? { poolSize } : {}),
    ...(timeouts !== undefined ? { timeouts } : {}),
  };
}

/** Validates the body of `POST …/credentials/rotate`; returns the grace period in seconds (default 3600). */
export function validateRotate(body: unknown): number {
  if (!isObject(body)) throw invalidRequest([{ field: "(root)", message: "must be a JSON object" }]);
  const problems: Problem[] = [];
  const v = new Checker(problems);
  v.keys(body, "", ["graceSeconds"]);
  const grace = v.int(body.graceSeconds, "graceSeconds", 0, 30 * 24 * 3600);
  if (problems.length > 0) throw invalidRequest(problems);
  return grace ?? 3600;
}

/** Validates a body that must be empty or `{}` (minting, revoking). */
export function validateEmpty(body: unknown): void {
  if (!isObject(body)) throw invalidRequest([{ field: "(root)", message: "must be a JSON object" }]);
  const problems: Problem[] = [];
  new Checker(problems).keys(body, "", []);
  if (problems.length > 0) throw invalidRequest(problems);
}

/** Merges validated changes into an origin; the result is complete. */
export function applyOriginChanges(current: OriginSettings, changes: ConfigChanges): OriginSettings {
  const base = changes.replaceOrigin ?? current;
  const patch = changes.origin;
  if (!patch) return base;
  const { sslrootcert, ...rest } = patch;
  const merged = { ...withoutRootCert(base), ...rest };
  if (sslrootcert === null) return merged;
  const cert = sslrootcert ?? base.sslrootcert;
  return cert === undefined ? merged : { ...merged, sslrootcert: cert };
}

function withoutRootCert(origin: OriginSettings): Omit<OriginSettings, "sslrootcert"> {
  const { sslrootcert: _, ...rest } = origin;
  return rest;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Collects problems; every method returns undefined for a missing or bad value. */
class Checker {
  readonly #problems: Problem[];

  constructor(problems: Problem[]) {
    this.#problems = problems;
  }

  add(field: string, message: string): undefined {
    this.#problems.push({ field, message });
    return undefined;
  }

  keys(value: Record<string, unknown>, at: string, allowed: readonly string[]): void {
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) {
        this.add(
          `${at}${key}`,
          allowed.length ? `unknown field; allowed: ${allowed.join(", ")}` : "unknown field; send {}",
        );
      }
    }
  }

  name(value: unknown, required: boolean): string | undefined {
    if (value === undefined && !required) return undefined;
    if (typeof value === "string" && NAME.test(value)) return value;
    return this.add(
      "name",
      `${describe(value)}must be 1–63 characters of A–Z a–z 0–9 _ . - starting with a letter or digit, e.g. "orders-db"`,
    );
  }

  /**
   * The origin from `origin` or `connectionString`. On create it must be complete (`replace`); on
   * update `origin` alone gives the fields to merge.
   */
  originOf(
    body: Record<string, unknown>,
    create: boolean,
  ): { replace?: OriginSettings; merge?: NonNullable<ConfigChanges["origin"]> } | undefined {
    const { origin, connectionString } = body;
    if (connectionString !== undefined) {
      let rootcert: string | undefined;
      if (origin !== undefined) {
        if (!isObject(origin)) return this.add("origin", "must be an object");
        // A URL cannot carry a PEM bundle, so it may come alongside; everything else would be said twice.
        this.keys(origin, "origin.", ["sslrootcert"]);
        rootcert = this.pem(origin.sslrootcert) ?? undefined;
      }
      if (typeof connectionString !== "string" || connectionString === "") {
        return this.add(
          "connectionString",
          "must be a non-empty string like postgres://user:password@host:5432/db",
        );
      }
      const parsed = parseConnectionString(connectionString);
      if ("problems" in parsed) {
        for (const message of parsed.problems) this.add("connectionString", message);
        return undefined;
      }
      const before = this.#problems.length;
      this.host(parsed.host, "connectionString");
      this.identifier(parsed.database, "connectionString", "database name");
      this.identifier(parsed.user, "connectionString", "user name");
      this.password(parsed.password, "connectionString");
      if (this.#problems.length > before) return undefined;
      return { replace: { ...parsed, ...(rootcert !== undefined ? { sslrootcert: rootcert } : {}) } };
    }
    if (origin === undefined) {
      if (create) {
        this.add(
          "origin",
          'required: give origin {"host", "port", "database", "user", "password"} or connectionString',
        );
      }
      return undefined;
    }
    if (!isObject(origin)) {
      return this.add(
        "origin",
        'must be an object {"host", "port", "database", "user", "password", "sslmode"?}',
      );
    }
    this.keys(origin, "origin.", ORIGIN_KEYS);
    const required = (key: string) => {
      if (create && origin[key] === undefined) this.add(`origin.${key}`, "required");
      return origin[key] !== undefined;
    };
    const host = required("host") ? this.host(origin.host, "origin.host") : undefined;
    const port = this.int(origin.port, "origin.port", 1, 65535);
    const database = required("database") ? this.identifier(origin.database, "origin.database") : undefined;
    const user = required("user") ? this.identifier(origin.user, "origin.user") : undefined;
    const password = required("password") ? this.password(origin.password, "origin.password") : undefined;
    const sslmode = this.oneOf(origin.sslmode, "origin.sslmode", ORIGIN_SSL_MODES);
    const sslrootcert = this.pem(origin.sslrootcert);
    const fields = {
      ...(host !== undefined ? { host } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(database !== undefined ? { database } : {}),
      ...(user !== undefined ? { user } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(sslmode !== undefined ? { sslmode } : {}),
      ...(sslrootcert !== undefined ? { sslrootcert } : {}),
    };
    if (!create) return { merge: fields };
    if (host === undefined || database === undefined || user === undefined || password === undefined) {
      return undefined;
    }
    return {
      replace: {
        host,
        port: port ?? 5432,
        database,
        user,
        password,
        sslmode: sslmode ?? "prefer",
        ...(typeof sslrootcert === "string" ? { sslrootcert } : {}),
      },
    };
  }

  host(value: unknown, field: string): string | undefined {
    const message = "must be a host name or IP address, e.g. db.internal or 10.0.0.5";
    if (typeof value !== "string" || value === "") return this.add(field, message);
    if (value.length > 255 || /[\s\0/\\@?#]/.test(value) || !value.isWellFormed()) {
      return this.add(field, `${describe(value)}${message} (no spaces, slashes or Unix socket paths)`);
    }
    return value;
  }

  /** A PostgreSQL identifier as the startup message carries it: 1–63 bytes, no NUL. */
  identifier(value: unknown, field: string, what = ""): string | undefined {
    const valid = typeof value === "string" && value !== "" && !value.includes("\0") && value.isWellFormed();
    if (valid && Buffer.byteLength(value) <= 63) return value;
    const prefix = what && field === "connectionString" ? `the ${what} ` : "";
    return this.add(field, `${prefix}${describe(value)}must be 1–63 bytes without NUL characters`);
  }

  /** Never echoes the value. */
  password(value: unknown, field: string): string | undefined {
    const valid = typeof value === "string" && value !== "" && !value.includes("\0") && value.isWellFormed();
    if (valid && value.length <= 4096) return value;
    return this.add(field, "the password must be a non-empty string of at most 4096 characters without NUL");
  }

  /** A PEM CA bundle; `null` means "remove". */
  pem(value: unknown): string | null | undefined {
    if (value === undefined || value === null) return value;
    const message = "must be a PEM CA bundle (-----BEGIN CERTIFICATE----- …), or null to remove it";
    if (typeof value !== "string" || value.length > MAX_PEM) return this.add("origin.sslrootcert", message);
    const blocks = value.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) return this.add("origin.sslrootcert", message);
    for (const [i, block] of blocks.entries()) {
      try {
        new X509Certificate(block);
      } catch {
        return this.add(
          "origin.sslrootcert",
          `certificate ${i + 1} of the bundle is not a valid X.509 certificate`,
        );
      }
    }
    return value;
  }

  int(value: unknown, field: string, min: number, max: number): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return value;
    return this.add(field, `${describe(value)}must be an integer from ${min} to ${max}`);
  }

  oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T | undefined {
    if (value === undefined) return undefined;
    if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
    return this.add(field, `${describe(value)}must be one of ${allowed.join(", ")}`);
  }

  timeouts(value: unknown): Partial<Timeouts> | undefined {
    if (value === undefined) return undefined;
    if (!isObject(value)) {
      return this.add("timeouts", `must be an object of milliseconds with keys ${TIMEOUT_KEYS.join(", ")}`);
    }
    this.keys(value, "timeouts.", TIMEOUT_KEYS);
    const result: Partial<Record<keyof Timeouts, number>> = {};
    for (const key of TIMEOUT_KEYS) {
      const ms = this.int(value[key], `timeouts.${key}`, 0, MAX_TIMEOUT_MS);
      if (ms !== undefined) result[key] = ms;
    }
    return result;
  }
}

/** `"x" ` or `12 ` for the start of a message about a non-secret value, truncated. */
function describe(value: unknown): string {
  if (value === undefined) return "";
  const text = JSON.stringify(value) ?? String(value);
  return `${text.length > 60 ? `${text.slice(0, 57)}…` : text} is not valid: `;
}
