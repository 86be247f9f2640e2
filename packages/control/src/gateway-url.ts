import net from "node:net";
import { ORIGIN_SSL_MODES } from "@pgbind/gateway";
import { ControlError } from "./errors.js";

/** Where clients reach the gateway, from `--gateway-url`. */
export interface GatewayAddress {
  readonly host: string;
  readonly port: number;
  /** As given in the URL's `sslmode`, else `prefer` (what libpq does with the same URL). */
  readonly sslmode: string;
  /** The `sslmode` the URL named, repeated in minted connection strings; undefined when it named none. */
  readonly explicitSslmode: string | undefined;
}

/**
 * Parses a gateway address such as `postgres://gw.internal:6432?sslmode=require` (no user, password or
 * database: each credential brings its own). Throws `INVALID_OPTIONS` saying what is valid.
 */
export function parseGatewayUrl(text: string): GatewayAddress {
  const example = "postgres://gw.internal:6432?sslmode=require";
  const fail = (why: string) =>
    new ControlError("INVALID_OPTIONS", `the gateway URL ${why}; expected e.g. ${example}`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail("is not a valid URL");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:")
    throw fail("must start with postgres://");
  if (url.username !== "" || url.password !== "") throw fail("must not contain a user or password");
  const host = decodeURIComponent(url.hostname.replace(/^\[(.*)\]$/, "$1"));
  if (host === "") throw fail("names no host");
  if (url.pathname !== "" && url.pathname !== "/")
    throw fail("must not name a database (clients use the config id)");
  const explicit = url.searchParams.get("sslmode") ?? undefined;
  for (const name of url.searchParams.keys()) {
    if (name !== "sslmode") throw fail(`has an unsupported parameter "${name}" (only sslmode)`);
  }
  if (explicit !== undefined && !(ORIGIN_SSL_MODES as readonly string[]).includes(explicit)) {
    throw fail(`has sslmode "${explicit}"; use one of ${ORIGIN_SSL_MODES.join(", ")}`);
  }
  return {
    host,
    port: url.port === "" ? 5432 : Number(url.port),
    sslmode: explicit ?? "prefer",
    explicitSslmode: explicit,
  };
}

/** `postgres://user:password@host:port/database[?sslmode=…]`, with user and password percent-encoded. */
export function gatewayConnectionString(
  gateway: GatewayAddress,
  user: string,
  password: string,
  database: string,
): string {
  const host = net.isIPv6(gateway.host) ? `[${gateway.host}]` : gateway.host;
  const query = gateway.explicitSslmode ? `?sslmode=${gateway.explicitSslmode}` : "";
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${gateway.port}/${encodeURIComponent(database)}${query}`;
}
