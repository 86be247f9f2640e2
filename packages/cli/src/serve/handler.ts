import { stat } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { inspect } from "node:util";
import { CliError } from "../errors.js";

/** The `ctx` a fetch handler receives (the Workers `ExecutionContext`). */
export interface ExecutionContext {
  /** Keeps work running after the response is sent; `pgbind serve` awaits it before exiting. */
  waitUntil(promise: Promise<unknown>): void;
  /** Accepted for compatibility; there is no origin to fall back to, so a throw is still a 500. */
  passThroughOnException(): void;
}

/** A backend module's default export: `export default { async fetch(request, env, ctx) { … } }`. */
export interface FetchHandler {
  fetch(request: Request, env: Readonly<Record<string, unknown>>, ctx: ExecutionContext): unknown;
}

/** Shown in errors so a person knows what the module should look like. */
const EXPECTED_SHAPE = "export default { async fetch(request, env, ctx) { … return new Response(…) } }";

/**
 * Throws `ENTRY_NOT_FOUND` unless `file` is an existing regular file. `display` is how the user
 * wrote the path, used in the message.
 */
export async function assertEntryExists(file: string, display: string): Promise<void> {
  const info = await stat(file).catch(() => undefined);
  if (info?.isFile()) return;
  throw new CliError(
    "ENTRY_NOT_FOUND",
    `${display} ${info === undefined ? "does not exist" : "is not a file"} (looked at ${file}); build the backend first, or pass the path of its fetch-handler module`,
  );
}

/**
 * Imports the backend module `file` and returns its default export.
 *
 * Each `generation` is a distinct module URL, so a new generation re-evaluates the file after it
 * changed (only the entry: modules it imports stay cached, which suits bundled output). Throws
 * `ENTRY_NOT_FOUND` or `ENTRY_INVALID`; `redact` scrubs secrets from the module's own error text.
 */
export async function loadHandler(
  file: string,
  display: string,
  generation: number,
  redact: (text: string) => string = (text) => text,
): Promise<FetchHandler> {
  await assertEntryExists(file, display);
  let module: Record<string, unknown>;
  try {
    module = (await import(`${pathToFileURL(file).href}?v=${generation}`)) as Record<string, unknown>;
  } catch (cause) {
    const detail = cause instanceof Error ? `${cause.name}: ${cause.message}` : inspect(cause);
    throw new CliError("ENTRY_INVALID", `${display} could not be loaded: ${redact(detail)}`, { cause });
  }
  const candidate = module.default;
  if (isFetchHandler(candidate)) return candidate;
  const found =
    candidate === undefined
      ? "it has no default export"
      : `its default export is ${describe(candidate)} without a fetch method`;
  throw new CliError(
    "ENTRY_INVALID",
    `${display} has no default export with a fetch(request, env, ctx) method (${found}); expected: ${EXPECTED_SHAPE}`,
  );
}

function isFetchHandler(value: unknown): value is FetchHandler {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { fetch?: unknown }).fetch === "function"
  );
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "function") return "a function";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}
