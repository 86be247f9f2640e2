import { ORIGIN_SSL_MODES, type OriginSslMode } from "@pgbind/gateway";

/** What a `postgres://` connection string names, before field validation. */
export interface ParsedConnectionString {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly sslmode: OriginSslMode;
}

const EXAMPLE = "postgres://user:password@host:5432/database?sslmode=require";
// Parameters libpq accepts that change nothing the gateway does towards the origin.
const IGNORED = new Set(["application_name", "fallback_application_name", "connect_timeout"]);
const SUPPORTED = ["sslmode", "host", "port", "dbname", "user", "password", "channel_binding", ...IGNORED];

/**
 * Parses a libpq connection URI (`postgres://` or `postgresql://`): percent-decoding, IPv6 hosts in
 * brackets, default port 5432, database defaulting to the user name, `sslmode` (default `prefer`) and
 * the other parameters libpq allows in the query (`host`, `port`, `dbname`, `user`, `password`).
 * Returns the parts or every problem found; messages never contain the password or the whole string.
 */
export function parseConnectionString(text: string): ParsedConnectionString | { problems: string[] } {
  const problems: string[] = [];
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text)?.[1]?.toLowerCase();
  if (scheme !== "postgres" && scheme !== "postgresql") {
    return { problems: [`must be a URL starting with postgres:// or postgresql://, e.g. ${EXAMPLE}`] };
  }
  const authority = /^[^:]+:\/\/([^/?#]*)/.exec(text)?.[1] ?? "";
  const hostPart = authority.slice(authority.lastIndexOf("@") + 1);
  if (hostPart.includes(",")) {
    return {
      problems: ["names several hosts; give exactly one host (multi-host strings are not supported)"],
    };
  }
  if (hostPart === "" && !/[?&]host=./.test(text))
    return { problems: [`names no host; expected e.g. ${EXAMPLE}`] };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    const port = /:([^:\]]*)$/.exec(hostPart)?.[1];
    return {
      problems: [
        port !== undefined &&
        port !== "" &&
        !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)
          ? `has a port that is not a number from 1 to 65535; expected e.g. ${EXAMPLE}`
          : `is not a valid URL; expected e.g. ${EXAMPLE} (percent-encode special characters in the user and password, e.g. @ as %40)`,
      ],
    };
  }
  if (url.hash !== "") problems.push("must not contain a #fragment");

  const params = new Map<string, string>();
  for (const pair of url.search.slice(1).split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const name = decode(eq === -1 ? pair : pair.slice(0, eq));
    const value = decode(eq === -1 ? "" : pair.slice(eq + 1));
    if (name === undefined || value === undefined) {
      problems.push("has a query parameter that is not valid percent-encoding");
      continue;
    }
    if (!SUPPORTED.includes(name)) {
      problems.push(`parameter "${name.slice(0, 40)}" is not supported; supported: ${SUPPORTED.join(", ")}`);
      continue;
    }
    params.set(name, value);
  }

  const host = params.get("host") ?? url.hostname.replace(/^\[(.*)\]$/, "$1");
  const decodedHost = params.has("host") ? host : decode(host);
  if (!decodedHost) problems.push(`names no host; expected e.g. ${EXAMPLE}`);

  const portText = params.get("port") ?? url.port;
  const port = portText === "" ? 5432 : Number(portText);
  if (!/^\d{1,5}$/.test(portText === "" ? "5432" : portText) || port < 1 || port > 65535) {
    problems.push("has a port that is not a number from 1 to 65535");
  }

  const user = params.get("user") ?? decode(url.username);
  if (user === undefined) problems.push("has a user name that is not valid percent-encoding");
  else if (user === "") problems.push(`names no user; expected e.g. ${EXAMPLE}`);

  const password = params.get("password") ?? decode(url.password);
  if (password === undefined) problems.push("has a password that is not valid percent-encoding");
  else if (password === "") problems.push(`has no password; the origin needs one, e.g. ${EXAMPLE}`);

  const path = url.pathname.replace(/^\//, "");
  if (path.includes("/")) problems.push("has a path with more than one segment; give only /<database>");
  const database = params.get("dbname") ?? (path === "" ? user : decode(path));
  if (database === undefined) problems.push("has a database name that is not valid percent-encoding");

  const sslmode = params.get("sslmode") ?? "prefer";
  if (!(ORIGIN_SSL_MODES as readonly string[]).includes(sslmode)) {
    problems.push(
      `sslmode "${sslmode.slice(0, 40)}" is not supported; use one of ${ORIGIN_SSL_MODES.join(", ")}`,
    );
  }
  const channelBinding = params.get("channel_binding");
  if (channelBinding !== undefined && channelBinding !== "prefer" && channelBinding !== "disable") {
    problems.push(
      "channel_binding=require is not supported (the gateway authenticates to the origin without channel binding); remove it or use channel_binding=prefer",
    );
  }

  if (problems.length > 0) return { problems };
  return {
    host: decodedHost as string,
    port,
    database: database as string,
    user: user as string,
    password: password as string,
    sslmode: sslmode as OriginSslMode,
  };
}

function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
