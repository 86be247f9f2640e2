/** `host:port/database` of a postgres:// URL, for messages: never the user's password. */
export function describeStore(url: string): string {
  try {
    const parsed = new URL(url);
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, "")) || "(default database)";
    return `${parsed.hostname || "localhost"}:${parsed.port || "5432"}/${database}`;
  } catch {
    return "(store URL not parseable)";
  }
}

/** Replaces every occurrence of `secret` in `text`, for messages built from library errors. */
export function scrub(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join("********") : text;
}

/** The password in a postgres:// URL, percent-decoded, or undefined. */
export function urlPassword(url: string): string | undefined {
  try {
    const password = new URL(url).password;
    return password === "" ? undefined : decodeURIComponent(password);
  } catch {
    return undefined;
  }
}
