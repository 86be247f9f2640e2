import net from "node:net";
import type { ConnectionOptions } from "node:tls";
import pg from "pg";
import type { OriginSettings } from "./validation.js";

/** Why an origin will not work yet, found by trying it at create/update. */
export type OriginWarningCode =
  | "ORIGIN_DNS"
  | "ORIGIN_UNREACHABLE"
  | "ORIGIN_TLS_REQUIRED"
  | "ORIGIN_TLS_FAILED"
  | "ORIGIN_AUTH_FAILED"
  | "ORIGIN_DATABASE_MISSING";

/** A warning returned with a config; the config is stored anyway. */
export interface Warning {
  readonly code: OriginWarningCode;
  readonly message: string;
}

/** A function trying an origin; never rejects. */
export type OriginProbe = (origin: OriginSettings) => Promise<Warning[]>;

const DEFAULT_BUDGET_MS = 5_000;
const NO_TLS = /does not support SSL/i;
const TLS_CODES =
  /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|ERR_OSSL_)/;

/**
 * Connects to the origin as the gateway would (same sslmode rules), logs in and runs `SELECT 1`, all
 * within `budgetMs` (default 5 s). Returns no warning when it works, otherwise one saying why not.
 * Messages name the host and the server's reason, never the password.
 */
export async function probeOrigin(origin: OriginSettings, budgetMs = DEFAULT_BUDGET_MS): Promise<Warning[]> {
  const deadline = Date.now() + budgetMs;
  const where = `${net.isIPv6(origin.host) ? `[${origin.host}]` : origin.host}:${origin.port}`;
  try {
    if (origin.sslmode === "prefer") {
      try {
        await attempt(origin, { rejectUnauthorized: false }, deadline);
      } catch (error) {
        // libpq's prefer: a server without TLS is used in plaintext.
        if (!(error instanceof Error) || !NO_TLS.test(error.message)) throw error;
        await attempt(origin, false, deadline);
      }
    } else {
      await attempt(origin, sslFor(origin), deadline);
    }
    return [];
  } catch (error) {
    return [classify(error, origin, where, budgetMs)];
  }
}

/** node-postgres `ssl` for an sslmode, matching what the gateway does towards the origin. */
function sslFor(origin: OriginSettings): false | ConnectionOptions {
  const ca = origin.sslrootcert ? { ca: origin.sslrootcert } : {};
  switch (origin.sslmode) {
    case "disable":
      return false;
    case "prefer":
    case "require":
      return { rejectUnauthorized: false };
    case "verify-ca":
      return { rejectUnauthorized: true, ...ca, checkServerIdentity: () => undefined };
    case "verify-full":
      return { rejectUnauthorized: true, ...ca };
  }
}

async function attempt(
  origin: OriginSettings,
  ssl: false | ConnectionOptions,
  deadline: number,
): Promise<void> {
  const remaining = Math.max(1, deadline - Date.now());
  const client = new pg.Client({
    host: origin.host,
    port: origin.port,
    database: origin.database,
    user: origin.user,
    password: origin.password,
    ssl,
    connectionTimeoutMillis: remaining,
    query_timeout: remaining,
    application_name: "pgbind-probe",
  });
  client.on("error", () => {});
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error("timeout"), { code: "PROBE_TIMEOUT" })),
      remaining,
    );
  });
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        await client.query("SELECT 1");
      })(),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
    await client.end().catch(() => {});
  }
}

function classify(error: unknown, origin: OriginSettings, where: string, budgetMs: number): Warning {
  const code = String((error as { code?: unknown } | null)?.code ?? "");
  const raw = error instanceof Error ? error.message : String(error);
  // Belt and braces: no server or library message should quote the password, but never risk it.
  const reason = raw.split(origin.password).join("***").replace(/\s+/g, " ").trim();
  const seconds = `${budgetMs / 1000} s`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME" || code === "EAI_FAIL") {
    return {
      code: "ORIGIN_DNS",
      message: `the origin host ${origin.host} does not resolve (${code}); check the host name`,
    };
  }
  if (code === "28000" && /no encryption/i.test(raw)) {
    return {
      code: "ORIGIN_TLS_REQUIRED",
      message: `the origin ${where} requires TLS but sslmode is ${origin.sslmode}; use sslmode require, verify-ca or verify-full (server said: ${reason})`,
    };
  }
  if (code === "28P01" || code === "28000") {
    return {
      code: "ORIGIN_AUTH_FAILED",
      message: `the origin ${where} refused user "${origin.user}" (${code}): ${reason}; check the user and password`,
    };
  }
  if (code === "3D000") {
    return {
      code: "ORIGIN_DATABASE_MISSING",
      message: `the database "${origin.database}" does not exist on the origin ${where} (3D000); create it or fix the name`,
    };
  }
  if (NO_TLS.test(raw)) {
    return {
      code: "ORIGIN_TLS_FAILED",
      message: `the origin ${where} does not offer TLS, but sslmode is ${origin.sslmode}; enable TLS on the server (use sslmode disable only on a trusted network)`,
    };
  }
  if (TLS_CODES.test(code) || /certificate|SSL|TLS|handshake/i.test(raw)) {
    return {
      code: "ORIGIN_TLS_FAILED",
      message: `TLS with the origin ${where} failed (sslmode ${origin.sslmode}): ${reason}`,
    };
  }
  if (
    code === "PROBE_TIMEOUT" ||
    code === "ETIMEDOUT" ||
    /timeout|timed out/i.test(raw) ||
    /Connection terminated unexpectedly/i.test(raw)
  ) {
    return {
      code: "ORIGIN_UNREACHABLE",
      message: `the origin ${where} did not answer within ${seconds}; check the host, port and firewall`,
    };
  }
  if (code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "ECONNRESET") {
    return {
      code: "ORIGIN_UNREACHABLE",
      message: `the origin ${where} cannot be reached (${code}); check that PostgreSQL runs there and the port is right`,
    };
  }
  return {
    code: "ORIGIN_UNREACHABLE",
    message: `the origin ${where} could not be used${code ? ` (${code})` : ""}: ${reason}`,
  };
}
