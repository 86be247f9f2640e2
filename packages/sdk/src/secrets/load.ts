import type { ManagedBinding } from "../binding.js";
import { PgBindError } from "../errors.js";

/** Who needs an optional module, for the error message when it is missing. */
export interface OptionalModuleContext {
  readonly bindingName: string;
  readonly service: ManagedBinding["service"];
  /** What the module is, as the message should name it, e.g. `"the AWS Secrets Manager SDK"`. */
  readonly install: string;
}

// Module namespaces are immutable, so memoising them is safe; clients are never cached here.
const modules = new Map<string, Promise<unknown>>();

/**
 * Imports an optional peer dependency on first use.
 *
 * The specifier is only ever a variable here, so bundlers leave these heavy SDKs out of the core
 * bundle. A CommonJS package whose named exports Node could not detect is flattened from `default`.
 *
 * @throws PgBindError `POSTGRES_SECRET_RESOLUTION_ERROR` (not retryable) naming the `npm install`
 *   command when the package is not installed, or why it failed to load.
 */
export async function loadOptionalModule<T>(specifier: string, context: OptionalModuleContext): Promise<T> {
  let pending = modules.get(specifier);
  if (pending === undefined) {
    pending = import(/* webpackIgnore: true */ /* @vite-ignore */ specifier).then(flattenDefault);
    modules.set(specifier, pending);
  }
  try {
    return (await pending) as T;
  } catch (error) {
    modules.delete(specifier);
    const who = `binding "${context.bindingName}" (service ${context.service})`;
    if (isMissing(error, specifier)) {
      throw new PgBindError(
        "POSTGRES_SECRET_RESOLUTION_ERROR",
        `${who} needs ${context.install}: npm install ${packageName(specifier)}`,
        { bindingName: context.bindingName, retryable: false },
      );
    }
    throw new PgBindError(
      "POSTGRES_SECRET_RESOLUTION_ERROR",
      `${who} could not load ${context.install} (${specifier}): ${errorMessage(error)}`,
      { bindingName: context.bindingName, retryable: false, cause: error },
    );
  }
}

function flattenDefault(namespace: Record<string, unknown>): Record<string, unknown> {
  const fallback = namespace.default;
  return typeof fallback === "object" && fallback !== null ? { ...fallback, ...namespace } : namespace;
}

/** Only the package itself being absent counts; a broken install (missing transitive dependency) does not. */
function isMissing(error: unknown, specifier: string): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== "ERR_MODULE_NOT_FOUND" && code !== "MODULE_NOT_FOUND") return false;
  const message = errorMessage(error);
  const name = packageName(specifier);
  return message.includes(`'${name}'`) || message.includes(`"${name}"`) || message.includes(`'${specifier}'`);
}

function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Error codes of failures to reach a service at all (DNS, TCP, TLS, timeouts): worth retrying. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "REQUEST_SEND_ERROR",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
]);

/** True when `error` (or its cause) is a transport failure rather than an answer from the service. */
export function isNetworkError(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const { code, name, cause } = current as { code?: unknown; name?: unknown; cause?: unknown };
    if (typeof code === "string" && NETWORK_CODES.has(code)) return true;
    if (name === "TimeoutError") return true;
    current = cause;
  }
  return false;
}

/**
 * The error every fetcher throws: it names the binding, the service, the store and the secret
 * reference (never the value), followed by what went wrong.
 */
export function secretStoreError(
  bindingName: string,
  binding: ManagedBinding,
  reference: string,
  problem: string,
  options: { readonly retryable: boolean; readonly cause?: unknown },
): PgBindError {
  const store = STORE_NAMES[binding.service];
  return new PgBindError(
    "POSTGRES_SECRET_RESOLUTION_ERROR",
    `binding "${bindingName}" (service ${binding.service}): could not read the password from ${store} ${reference}: ${problem}`,
    { bindingName, retryable: options.retryable, cause: options.cause },
  );
}

const STORE_NAMES: Record<ManagedBinding["service"], string> = {
  aurora: "AWS Secrets Manager secret",
  "cloud-sql": "GCP Secret Manager secret version",
  "flexible-server": "Azure Key Vault secret",
};

/** `Label (HTTP 429): the service's own message`, on one line and bounded. */
export function formatProblem(
  label: string,
  httpStatus: number | undefined,
  serviceMessage: unknown,
): string {
  const line = typeof serviceMessage === "string" ? serviceMessage.replace(/\s+/g, " ").trim() : "";
  const text = line.length > 300 ? `${line.slice(0, 300)}…` : line;
  return `${label}${httpStatus === undefined ? "" : ` (HTTP ${httpStatus})`}${text ? `: ${text}` : ""}`;
}
