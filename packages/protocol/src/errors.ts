import type { ErrorFields } from "./backend.js";

/**
 * Stable codes of {@link ProtocolError}.
 *
 * - `MALFORMED_MESSAGE`: the bytes do not follow the message format (truncated field, missing NUL,
 *   impossible length, trailing bytes, unknown enum value).
 * - `MESSAGE_TOO_LARGE`: a message declared a length above the configured limit; raised from the header,
 *   before any of the body is buffered.
 * - `UNEXPECTED_MESSAGE`: a well-formed message that is not valid here (a parser given another message
 *   type, data after an SSLRequest).
 * - `UNSUPPORTED_PROTOCOL`: a StartupMessage for a protocol major version other than 3.
 */
export type ProtocolErrorCode =
  | "MALFORMED_MESSAGE"
  | "MESSAGE_TOO_LARGE"
  | "UNEXPECTED_MESSAGE"
  | "UNSUPPORTED_PROTOCOL";

/** SQLSTATE `08P01` protocol_violation, what PostgreSQL reports for a broken message. */
export const PROTOCOL_VIOLATION = "08P01";
/** SQLSTATE `0A000` feature_not_supported, what PostgreSQL reports for an unsupported protocol version. */
export const FEATURE_NOT_SUPPORTED = "0A000";

/**
 * A peer broke the wire protocol. Everything in this package that rejects input throws this (never a
 * bare `RangeError` from a Buffer read), so a caller can answer with an ErrorResponse carrying `sqlstate`
 * and close the connection. Messages describe the violation and never echo payload bytes beyond a name.
 *
 * @example
 * try {
 *   framer.push(chunk, onFrame);
 * } catch (error) {
 *   if (!(error instanceof ProtocolError)) throw error;
 *   socket.end(buildErrorResponse(error.toErrorFields()));
 * }
 */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  /** The SQLSTATE to report to the peer: `08P01` unless the code calls for another. */
  readonly sqlstate: string;

  constructor(
    code: ProtocolErrorCode,
    message: string,
    options: { sqlstate?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ProtocolError";
    this.code = code;
    this.sqlstate =
      options.sqlstate ?? (code === "UNSUPPORTED_PROTOCOL" ? FEATURE_NOT_SUPPORTED : PROTOCOL_VIOLATION);
  }

  /** The ErrorResponse fields PostgreSQL itself would send for this violation (FATAL by default). */
  toErrorFields(severity: "ERROR" | "FATAL" = "FATAL"): ErrorFields {
    return { severity, severityNonLocalized: severity, code: this.sqlstate, message: this.message };
  }
}

/** True when `error` is a {@link ProtocolError}, optionally with the given code. */
export function isProtocolError(error: unknown, code?: ProtocolErrorCode): error is ProtocolError {
  return error instanceof ProtocolError && (code === undefined || error.code === code);
}
