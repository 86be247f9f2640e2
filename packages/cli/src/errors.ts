/** Exit codes of every pgbind command. */
export const EXIT = {
  ok: 0,
  /** The operation failed (a database would not start, a binding could not be resolved, …). */
  failed: 1,
  /** The command line, the manifest or the project is wrong: fix the input and retry. */
  usage: 2,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Stable codes for CLI failures. */
export type CliErrorCode =
  | "USAGE"
  | "MANIFEST_NOT_FOUND"
  | "MANIFEST_INVALID"
  | "ENTRY_NOT_FOUND"
  | "ENTRY_INVALID"
  | "COMPATIBILITY_INVALID"
  | "BINDING_UNAVAILABLE"
  | "DATABASE_START_FAILED"
  | "COMMAND_FAILED";

/**
 * An error the CLI reports to a person: `message` says what is wrong and what to do; the process
 * exits with `exitCode`. Never carries a secret.
 */
export class CliError extends Error {
  readonly code: CliErrorCode;
  readonly exitCode: ExitCode;

  constructor(code: CliErrorCode, message: string, options: { exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CliError";
    this.code = code;
    this.exitCode =
      options.exitCode ??
      (code === "DATABASE_START_FAILED" || code === "COMMAND_FAILED" ? EXIT.failed : EXIT.usage);
  }
}
