/** Stable codes for everything that can go wrong while running a local PostgreSQL. */
export type LocalPostgresErrorCode =
  | "UNSUPPORTED_PLATFORM"
  | "RUNTIME_NOT_INSTALLED"
  | "RUNTIME_DIR_UNSAFE"
  | "ACCOUNT_SETUP_FAILED"
  | "INITDB_FAILED"
  | "START_FAILED"
  | "START_TIMEOUT"
  | "PORT_IN_USE"
  | "INVALID_OPTIONS";

/** An error from starting or stopping a local PostgreSQL, with a stable `code`. */
export class LocalPostgresError extends Error {
  readonly code: LocalPostgresErrorCode;
  readonly retryable: boolean;

  constructor(
    code: LocalPostgresErrorCode,
    message: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = `LocalPostgresError [${code}]`;
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}
