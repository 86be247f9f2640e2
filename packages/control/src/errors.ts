/** One validation problem: the JSON path of the field and what would be valid. Never holds a secret value. */
export interface Problem {
  readonly field: string;
  readonly message: string;
}

/**
 * Stable error codes of the control plane. The HTTP status each maps to is in {@link ControlError.status}.
 *
 * - `INVALID_REQUEST` (400): the body is not JSON or fails validation; see `problems`.
 * - `UNAUTHORIZED` (401): no bearer token, or a wrong one.
 * - `NOT_FOUND` (404): unknown config, credential or route.
 * - `METHOD_NOT_ALLOWED` (405): the route exists, not with that method.
 * - `CONFLICT` (409): a config with that name exists.
 * - `PAYLOAD_TOO_LARGE` (413): the body is over the limit.
 * - `STORE_UNAVAILABLE` (503, retryable): the registry database cannot be reached.
 * - `STORE_NOT_INITIALISED` (503, retryable): the store has no `pgbind` schema yet (no control plane ran on it).
 * - `STORE_SCHEMA_TOO_NEW` (500): the store was migrated by a newer pgbind.
 * - `MASTER_KEY_INVALID` (500): the master key (variable or file) is malformed or its file is unsafe.
 * - `MASTER_KEY_MISSING` (500): no master key was given for an external store.
 * - `MASTER_KEY_MISMATCH` (500): stored secrets were encrypted with another master key (or altered).
 * - `INVALID_OPTIONS` (500): bad options passed to a function of this package.
 * - `STORE_START_FAILED` (500): the embedded PostgreSQL did not start.
 * - `INTERNAL` (500): a bug; the message says nothing more.
 */
export type ControlErrorCode =
  | "INVALID_REQUEST"
  | "UNAUTHORIZED"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "CONFLICT"
  | "PAYLOAD_TOO_LARGE"
  | "STORE_UNAVAILABLE"
  | "STORE_NOT_INITIALISED"
  | "STORE_SCHEMA_TOO_NEW"
  | "MASTER_KEY_INVALID"
  | "MASTER_KEY_MISSING"
  | "MASTER_KEY_MISMATCH"
  | "INVALID_OPTIONS"
  | "STORE_START_FAILED"
  | "INTERNAL";

const STATUS: Record<ControlErrorCode, number> = {
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  STORE_UNAVAILABLE: 503,
  STORE_NOT_INITIALISED: 503,
  STORE_SCHEMA_TOO_NEW: 500,
  MASTER_KEY_INVALID: 500,
  MASTER_KEY_MISSING: 500,
  MASTER_KEY_MISMATCH: 500,
  INVALID_OPTIONS: 500,
  STORE_START_FAILED: 500,
  INTERNAL: 500,
};

const RETRYABLE = new Set<ControlErrorCode>(["STORE_UNAVAILABLE", "STORE_NOT_INITIALISED"]);

/**
 * The one error type of the control plane. Check `code` (stable) and `retryable`; `message` is for
 * people and never contains a secret (origin password, credential password, token or master key).
 */
export class ControlError extends Error {
  readonly code: ControlErrorCode;
  /** HTTP status the API answers with. */
  readonly status: number;
  readonly retryable: boolean;
  /** For `INVALID_REQUEST`: every bad field with what would be valid. */
  readonly problems: readonly Problem[] | undefined;

  constructor(
    code: ControlErrorCode,
    message: string,
    options: { cause?: unknown; problems?: readonly Problem[]; retryable?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = `ControlError [${code}]`;
    this.code = code;
    this.status = STATUS[code];
    this.retryable = options.retryable ?? RETRYABLE.has(code);
    this.problems = options.problems;
  }

  /** The API error body: `{"error": {"code", "message", "problems"?}}`. */
  toJSON(): { error: { code: ControlErrorCode; message: string; problems?: readonly Problem[] } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.problems ? { problems: this.problems } : {}),
      },
    };
  }
}

/** A 400 listing every problem. */
export function invalidRequest(problems: readonly Problem[]): ControlError {
  const summary = problems.map((p) => `${p.field}: ${p.message}`).join("; ");
  return new ControlError("INVALID_REQUEST", `invalid request: ${summary}`, { problems });
}

/** True for errors of node-postgres / the network that mean the store cannot be reached right now. */
export function isStoreUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") {
    const message = error instanceof Error ? error.message : "";
    return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/i.test(
      message,
    );
  }
  return (
    /^(08|57P0|53)/.test(code) ||
    ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "EPIPE"].includes(
      code,
    )
  );
}

/**
 * Turns an error from the store into a {@link ControlError}: unreachable → `STORE_UNAVAILABLE`, missing
 * schema → `STORE_NOT_INITIALISED`, a ControlError stays as is, anything else → `INTERNAL` (the cause is
 * kept for logs; pg messages name tables and constraints, never parameter values).
 */
export function fromStoreError(error: unknown, store: string): ControlError {
  if (error instanceof ControlError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const detail = error instanceof Error ? error.message : String(error);
  if (isStoreUnavailable(error)) {
    return new ControlError("STORE_UNAVAILABLE", `the registry store ${store} is unavailable: ${detail}`, {
      cause: error,
    });
  }
  if (code === "28P01" || code === "28000" || code === "3D000") {
    return new ControlError(
      "STORE_UNAVAILABLE",
      `the registry store ${store} refused the connection: ${detail}`,
      {
        cause: error,
        retryable: false,
      },
    );
  }
  if (code === "3F000" || code === "42P01") {
    return new ControlError(
      "STORE_NOT_INITIALISED",
      `the registry store ${store} has no pgbind schema yet; start \`pgbind control --store …\` on it once to create it`,
      { cause: error },
    );
  }
  return new ControlError("INTERNAL", `registry store ${store}: unexpected error (${detail})`, {
    cause: error,
  });
}
