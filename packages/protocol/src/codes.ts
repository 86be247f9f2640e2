/**
 * Type bytes of the messages a frontend (client) sends, protocol 3.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-codes.html
 */
export const FrontendMessage = {
  Bind: 0x42, // B
  Close: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  Describe: 0x44, // D
  Execute: 0x45, // E
  Flush: 0x48, // H
  FunctionCall: 0x46, // F
  Parse: 0x50, // P
  /** PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share this byte. */
  Password: 0x70, // p
  Query: 0x51, // Q
  Sync: 0x53, // S
  Terminate: 0x58, // X
} as const;
/** A frontend message type byte. */
export type FrontendMessageCode = (typeof FrontendMessage)[keyof typeof FrontendMessage];

/**
 * Type bytes of the messages a backend (server) sends, protocol 3.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-codes.html
 */
export const BackendMessage = {
  Authentication: 0x52, // R
  BackendKeyData: 0x4b, // K
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  CommandComplete: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyInResponse: 0x47, // G
  CopyOutResponse: 0x48, // H
  CopyBothResponse: 0x57, // W
  DataRow: 0x44, // D
  EmptyQueryResponse: 0x49, // I
  ErrorResponse: 0x45, // E
  FunctionCallResponse: 0x56, // V
  NegotiateProtocolVersion: 0x76, // v
  NoData: 0x6e, // n
  NoticeResponse: 0x4e, // N
  NotificationResponse: 0x41, // A
  ParameterDescription: 0x74, // t
  ParameterStatus: 0x53, // S
  ParseComplete: 0x31, // 1
  PortalSuspended: 0x73, // s
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
} as const;
/** A backend message type byte. */
export type BackendMessageCode = (typeof BackendMessage)[keyof typeof BackendMessage];

function nameTable(codes: Readonly<Record<string, number>>): readonly (string | undefined)[] {
  const names: (string | undefined)[] = new Array(256).fill(undefined);
  for (const [name, code] of Object.entries(codes)) names[code] = name;
  return names;
}

const FRONTEND_NAMES = nameTable(FrontendMessage);
const BACKEND_NAMES = nameTable(BackendMessage);

function unknownName(code: number): string {
  const letter = code >= 0x20 && code < 0x7f ? ` '${String.fromCharCode(code)}'` : "";
  return `Unknown${letter} (0x${code.toString(16).padStart(2, "0")})`;
}

/** The name of a frontend message type byte for logs, e.g. `Query`; `Unknown 'x' (0x78)` otherwise. */
export function frontendMessageName(code: number): string {
  return FRONTEND_NAMES[code] ?? unknownName(code);
}

/** The name of a backend message type byte for logs, e.g. `ReadyForQuery`; `Unknown 'x' (0x78)` otherwise. */
export function backendMessageName(code: number): string {
  return BACKEND_NAMES[code] ?? unknownName(code);
}

// Startup-phase messages have no type byte: int32 length, then one of these int32 codes. The request
// codes are versions 1234.5678+ that no real protocol will ever use.

/**
 * Protocol 3.0 in a StartupMessage: major 3 in the high 16 bits, minor 0 in the low.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 */
export const PROTOCOL_VERSION_3 = 196608;
/** SSLRequest code, 1234.5679. @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL */
export const SSL_REQUEST_CODE = 80877103;
/** GSSENCRequest code, 1234.5680. @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-GSSAPI */
export const GSSENC_REQUEST_CODE = 80877104;
/** CancelRequest code, 1234.5678. @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS */
export const CANCEL_REQUEST_CODE = 80877102;

/**
 * The int32 subtype that follows the `R` byte of an Authentication message.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK
 */
export const AuthenticationCode = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;
/** An Authentication subtype. */
export type AuthenticationCodeValue = (typeof AuthenticationCode)[keyof typeof AuthenticationCode];

/**
 * The transaction status byte of ReadyForQuery.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY
 */
export const TransactionStatus = {
  Idle: 0x49, // I
  InTransaction: 0x54, // T
  /** In a failed transaction block: statements are rejected until the block ends. */
  Failed: 0x45, // E
} as const;
/** A ReadyForQuery transaction status byte. */
export type TransactionStatusCode = (typeof TransactionStatus)[keyof typeof TransactionStatus];

/**
 * Field type bytes of ErrorResponse and NoticeResponse. The keys are the property names of
 * {@link ErrorFields} (the same names node-postgres uses on `DatabaseError`).
 *
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export const ErrorField = {
  /** Localized severity: ERROR, FATAL, PANIC, WARNING, NOTICE, DEBUG, INFO, LOG. */
  severity: 0x53, // S
  /** Severity never localized (PostgreSQL 9.6+). */
  severityNonLocalized: 0x56, // V
  /** SQLSTATE. */
  code: 0x43, // C
  message: 0x4d, // M
  detail: 0x44, // D
  hint: 0x48, // H
  /** 1-based character index into the query string. */
  position: 0x50, // P
  internalPosition: 0x70, // p
  internalQuery: 0x71, // q
  where: 0x57, // W
  schema: 0x73, // s
  table: 0x74, // t
  column: 0x63, // c
  dataType: 0x64, // d
  constraint: 0x6e, // n
  file: 0x46, // F
  line: 0x4c, // L
  routine: 0x52, // R
} as const;
/** A property name of {@link ErrorField}. */
export type ErrorFieldName = keyof typeof ErrorField;

const ERROR_FIELD_NAMES = nameTable(ErrorField) as readonly (ErrorFieldName | undefined)[];

/** The {@link ErrorFields} property for an error field byte, or undefined for an unknown byte. */
export function errorFieldName(code: number): ErrorFieldName | undefined {
  return ERROR_FIELD_NAMES[code];
}
