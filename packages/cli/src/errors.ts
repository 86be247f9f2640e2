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
  | "COMMAND_FAILED"
  /** No control plane is configured: no --control-url, PGBIND_CONTROL_URL or .pgbind/control/control.json. */
  | "CONTROL_NOT_CONFIGURED"
  /** The control plane did not answer (not running, wrong URL, network). */
  | "CONTROL_UNREACHABLE"
  /** The control plane refused the token (401). */
  | "CONTROL_UNAUTHORIZED"
  /** The control plane answered with something unexpected (5xx, not JSON). */
  | "CONTROL_FAILED"
  /** An unknown config or credential id (404). */
  | "NOT_FOUND"
  /** A config with that name exists (409). */
  | "CONFLICT"
  /** The control plane rejected the request body (400); the message lists every problem. */
  | "INVALID";

/** Codes that mean the operation failed (exit 1) rather than the input being wrong (exit 2). */
const FAILED_CODES: ReadonlySet<CliErrorCode> = new Set<CliErrorCode>([
  "DATABASE_START_FAILED",
  "COMMAND_FAILED",
  "CONTROL_UNREACHABLE",
  "CONTROL_FAILED",
]);

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
    this.exitCode = options.exitCode ?? (FAILED_CODES.has(code) ? EXIT.failed : EXIT.usage);
  }
}
