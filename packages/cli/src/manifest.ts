import { readFile } from "node:fs/promises";
import { CliError, type CliErrorCode } from "./errors.js";

/** One `bindings.hyperdrive[]` entry: expose the Postgres config `id` to the backend as `env[binding]`. */
export interface ManifestBinding {
  readonly binding: string;
  readonly id: string;
}

/** A validated `w7s.json`. */
export interface Manifest {
  /** The path the manifest was loaded from, as given to {@link loadManifest}. */
  readonly path: string;
  readonly bindings: readonly ManifestBinding[];
}

/**
 * What a binding name must match: a JavaScript identifier without `$`, because the name also becomes
 * the environment variable `PGBIND_<NAME>_BINDING`. `schema/w7s.schema.json` uses the same pattern.
 */
export const BINDING_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The binding kinds pgbind understands under `bindings`. */
export const SUPPORTED_BINDING_KINDS = ["hyperdrive"] as const;

const TOP_LEVEL_KEYS = ["$schema", "bindings"] as const;
const BINDING_KEYS = ["binding", "id"] as const;

/**
 * Reads and validates a manifest. `name` is how messages refer to the file (default: `file`).
 * @throws CliError `MANIFEST_NOT_FOUND` when the file does not exist, `MANIFEST_INVALID` when it is
 *   not JSON or not a valid manifest (every problem listed).
 */
export async function loadManifest(file: string, name: string = file): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      throw new CliError(
        "MANIFEST_NOT_FOUND",
        `${name} not found; create it, or pass --manifest <file> to use another manifest`,
        { cause: error },
      );
    throw new CliError("MANIFEST_INVALID", `${name}: cannot be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return validateManifest(parseJson(text, name, "MANIFEST_INVALID"), name);
}

/**
 * Validates a parsed `w7s.json` (`file` names it in messages). A manifest without hyperdrive bindings
 * is valid.
 * @throws CliError `MANIFEST_INVALID`, message `<file>: invalid manifest:` then one problem per line.
 */
export function validateManifest(value: unknown, file: string): Manifest {
  const problems = manifestProblems(value);
  if (problems.length > 0)
    throw new CliError(
      "MANIFEST_INVALID",
      `${file}: invalid manifest:\n${problems.map((p) => `  ${p}`).join("\n")}`,
    );
  // No problems: the shape is the one manifestProblems checked.
  const bindings = (value as { bindings?: { hyperdrive?: ManifestBinding[] } }).bindings?.hyperdrive ?? [];
  return { path: file, bindings: bindings.map(({ binding, id }) => ({ binding, id })) };
}

/** Every problem in a parsed manifest, each `<json path>: <what is wrong and what is valid>`. */
export function manifestProblems(value: unknown): string[] {
  if (!isObject(value)) return [`(root): must be an object like {"bindings": {"hyperdrive": []}}`];
  const problems = unknownKeys(value, TOP_LEVEL_KEYS, "");
  if (value.$schema !== undefined && typeof value.$schema !== "string")
    problems.push("$schema: must be a string (the path or URL of w7s.schema.json)");
  const bindings = value.bindings;
  if (bindings === undefined) return problems;
  if (!isObject(bindings)) return [...problems, `bindings: must be an object like {"hyperdrive": []}`];
  for (const kind of Object.keys(bindings))
    if (!(SUPPORTED_BINDING_KINDS as readonly string[]).includes(kind))
      problems.push(
        `${member("bindings", kind)}: unknown binding kind; pgbind supports: ${SUPPORTED_BINDING_KINDS.join(", ")}`,
      );
  const list = bindings.hyperdrive;
  if (list === undefined) return problems;
  if (!Array.isArray(list))
    return [...problems, `bindings.hyperdrive: must be an array of {"binding": "DB", "id": "<config id>"}`];
  // First path of each name and id, to point duplicates at the earlier declaration.
  const names = new Map<string, { name: string; at: string }>();
  const ids = new Map<string, string>();
  list.forEach((entry: unknown, index) => {
    const at = `bindings.hyperdrive[${index}]`;
    if (!isObject(entry)) {
      problems.push(`${at}: must be an object like {"binding": "DB", "id": "<config id>"}`);
      return;
    }
    problems.push(...unknownKeys(entry, BINDING_KEYS, at));
    const { binding, id } = entry;
    if (typeof binding !== "string" || binding === "") {
      problems.push(`${at}.binding: must be a non-empty string naming the binding, e.g. "DB"`);
    } else if (!BINDING_NAME_PATTERN.test(binding)) {
      problems.push(
        `${at}.binding: ${JSON.stringify(binding)} is not a valid identifier; use e.g. ${suggestIdentifier(binding)}`,
      );
    } else {
      // Names that differ only in case still collide in PGBIND_<NAME>_BINDING.
      const earlier = names.get(binding.toUpperCase());
      if (earlier === undefined) names.set(binding.toUpperCase(), { name: binding, at });
      else if (earlier.name === binding)
        problems.push(`${at}.binding: ${JSON.stringify(binding)} is declared twice (also at ${earlier.at})`);
      else
        problems.push(
          `${at}.binding: ${JSON.stringify(binding)} and ${JSON.stringify(earlier.name)} (${earlier.at}) both become PGBIND_${binding.toUpperCase()}_BINDING; rename one`,
        );
    }
    if (typeof id !== "string" || id === "") {
      problems.push(`${at}.id: must be a non-empty string`);
    } else {
      const earlier = ids.get(id);
      if (earlier === undefined) ids.set(id, at);
      else problems.push(`${at}.id: ${JSON.stringify(id)} is declared twice (also at ${earlier})`);
    }
  });
  return problems;
}

/** A valid binding name close to `name`: upper-cased, invalid characters replaced with `_`. */
export function suggestIdentifier(name: string): string {
  const cleaned = name.toUpperCase().replace(/[^A-Za-z0-9_]/g, "_");
  return cleaned === "" || /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned;
}

/**
 * `JSON.parse` whose error names the file and the line:column (V8 only reports an offset).
 * @throws CliError with `code`: `<file>: invalid JSON at <line>:<column>: <reason>`.
 */
export function parseJson(text: string, file: string, code: CliErrorCode): unknown {
  // Editors on Windows may save a byte-order mark, which JSON.parse rejects.
  const body = text.startsWith("\uFEFF") ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch (error) {
    const message = (error as Error).message;
    const before = body.slice(0, errorOffset(body, message)).split("\n");
    const where = `${before.length}:${(before.at(-1)?.length ?? 0) + 1}`;
    const reason = message
      .replace(/(?: in JSON)? at position \d+.*$/s, "")
      .replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, "")
      .replace(/^Unexpected end of JSON input$/, "unexpected end of input");
    throw new CliError(code, `${file}: invalid JSON at ${where}: ${reason}`, { cause: error });
  }
}

/** Where JSON.parse failed on `text`, given its error `message`. */
function errorOffset(text: string, message: string): number {
  const reported = /at position (\d+)/.exec(message)?.[1];
  if (reported !== undefined) return Number(reported);
  if (/end of JSON input/.test(message)) return text.length;
  // V8 gives no position for an unexpected token: find the shortest prefix that already fails there.
  // A prefix is still fine if it parses or fails only at its end (it was cut off, not wrong).
  const fine = (length: number): boolean => {
    try {
      JSON.parse(text.slice(0, length));
      return true;
    } catch (error) {
      const m = (error as Error).message;
      return /end of JSON input/.test(m) || Number(/at position (\d+)/.exec(m)?.[1] ?? -1) >= length;
    }
  };
  let [low, high] = [0, text.length]; // fine(low), !fine(high)
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (fine(middle)) low = middle;
    else high = middle;
  }
  return low;
}

function unknownKeys(value: Record<string, unknown>, allowed: readonly string[], at: string): string[] {
  return Object.keys(value)
    .filter((key) => !allowed.includes(key))
    .map((key) => `${member(at, key)}: unknown key; allowed: ${allowed.join(", ")}`);
}

/** The JSON path of `key` inside `at`: `a.b`, or `a["b c"]` when the key is not a plain name. */
function member(at: string, key: string): string {
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)) return `${at}[${JSON.stringify(key)}]`;
  return at === "" ? key : `${at}.${key}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
