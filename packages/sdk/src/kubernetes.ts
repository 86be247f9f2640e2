import { readdir, readFile } from "node:fs/promises";
import { PgBindError } from "./errors.js";
import type { RawBinding } from "./sources.js";

/** Files pgbind reads from a Service Binding directory; `type` must say `postgresql`. */
const FIELDS = ["host", "port", "database", "username", "password", "sslmode", "sslrootcert"] as const;
const BINDING_TYPE = "postgresql";

/**
 * Trailing-newline rule: exactly one trailing line ending (`\n` or `\r\n`) is removed from every
 * file, so `echo secret > password` works and a password that really ends in a space keeps it.
 * Non-secret fields are also trimmed of surrounding whitespace. A password that ends in a newline
 * must be written with a second one.
 */
export function stripOneLineEnding(content: string): string {
  if (content.endsWith("\r\n")) return content.slice(0, -2);
  if (content.endsWith("\n")) return content.slice(0, -1);
  return content;
}

/**
 * Reads `<root>/<name>/` per the Kubernetes Service Binding spec. Other files the spec or a provider
 * may add (`provider`, `uri`, `jdbc-url`, Secret-volume `..data` links) are ignored. Returns undefined
 * when there is no such directory.
 */
export async function readServiceBinding(root: string, name: string): Promise<RawBinding | undefined> {
  const dir = `${root.replace(/\/$/, "")}/${name}`;
  const source = `${dir}/`;
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw new PgBindError(
      "INVALID_BINDING_CONFIG",
      `binding "${name}" (${source}) cannot be read: ${errorCode(error)}`,
      {
        bindingName: name,
      },
    );
  }
  const read = async (file: string) =>
    entries.includes(file) ? readFile(`${dir}/${file}`, "utf8") : undefined;
  const type = await read("type");
  if (type === undefined || type.trim().toLowerCase() !== BINDING_TYPE) {
    throw new PgBindError(
      "INVALID_BINDING_CONFIG",
      `binding "${name}" (${source}) is invalid:\n  - type: ${type === undefined ? "missing" : `"${type.trim()}"`}; expected a file "type" containing "${BINDING_TYPE}"`,
      { bindingName: name },
    );
  }
  const value: Record<string, string> = { service: "external" };
  for (const field of FIELDS) {
    const content = await read(field);
    if (content === undefined) continue;
    const stripped = stripOneLineEnding(content);
    value[field] = field === "password" || field === "sslrootcert" ? stripped : stripped.trim();
  }
  return { source, value };
}

/** Names of the Postgres bindings under a Service Binding root (directories whose `type` is postgresql). */
export async function listServiceBindings(root: string): Promise<string[]> {
  let dirs: string[];
  try {
    dirs = (await readdir(root, { withFileTypes: true }))
      .filter((d) => (d.isDirectory() || d.isSymbolicLink()) && !d.name.startsWith("."))
      .map((d) => d.name);
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const dir of dirs) {
    try {
      if (
        (await readFile(`${root.replace(/\/$/, "")}/${dir}/type`, "utf8")).trim().toLowerCase() ===
        BINDING_TYPE
      ) {
        found.push(dir);
      }
    } catch {
      // Not a binding directory, or not one of ours.
    }
  }
  return found;
}

function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === "ENOENT" || code === "ENOTDIR";
}

function errorCode(error: unknown): string {
  return (error as { code?: string }).code ?? String(error);
}
