/**
 * Stable error codes of the SDK.
 *
 * - `BINDING_NOT_FOUND`: no binding of that name is injected. Not retryable.
 * - `INVALID_BINDING_CONFIG`: the injected binding is malformed. Not retryable.
 * - `POSTGRES_SECRET_RESOLUTION_ERROR`: the password could not be read from the cloud secret store.
 *   Retryable when the store throttled, failed transiently or returned an empty secret; not retryable
 *   when the secret does not exist, access is denied or the store's SDK is not installed.
 * - `DATABASE_UNREACHABLE`: an `sslmode=prefer` binding needed a TLS probe of the server and the server
 *   could not be reached within the probe timeout. Retryable.
 */
export type PgBindErrorCode =
  | "BINDING_NOT_FOUND"
  | "INVALID_BINDING_CONFIG"
  | "POSTGRES_SECRET_RESOLUTION_ERROR"
  | "DATABASE_UNREACHABLE";

const DEFAULT_RETRYABLE: Record<PgBindErrorCode, boolean> = {
  BINDING_NOT_FOUND: false,
  INVALID_BINDING_CONFIG: false,
  POSTGRES_SECRET_RESOLUTION_ERROR: true,
  DATABASE_UNREACHABLE: true,
};

/** Options for constructing a {@link PgBindError}. */
export interface PgBindErrorOptions {
  readonly bindingName?: string | undefined;
  readonly retryable?: boolean | undefined;
  readonly cause?: unknown;
}

/**
 * The one error type the SDK throws. Check `code` (stable) and `retryable`; `message` is for people.
 * Messages never contain a password or secret value.
 *
 * @example
 * try {
 *   await getPostgresConnection("db");
 * } catch (error) {
 *   if (error instanceof PgBindError && error.retryable) scheduleRetry();
 *   else throw error;
 * }
 */
export class PgBindError extends Error {
  readonly code: PgBindErrorCode;
  readonly retryable: boolean;
  readonly bindingName: string | undefined;

  constructor(code: PgBindErrorCode, message: string, options: PgBindErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PgBindError";
    this.code = code;
    this.retryable = options.retryable ?? DEFAULT_RETRYABLE[code];
    this.bindingName = options.bindingName;
  }

  /** A plain, secret-free object for structured logs. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      retryable: this.retryable,
      bindingName: this.bindingName,
      message: this.message,
    };
  }
}

/** True when `error` is a {@link PgBindError}, optionally with the given code. */
export function isPgBindError(error: unknown, code?: PgBindErrorCode): error is PgBindError {
  return error instanceof PgBindError && (code === undefined || error.code === code);
}
