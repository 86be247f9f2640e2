// Messages a backend sends: built here when the gateway answers a client itself (authentication, errors,
// the admin console), parsed here when the gateway reads a server.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html
import {
  AuthenticationCode,
  BackendMessage,
  ErrorField,
  type ErrorFieldName,
  errorFieldName,
  TransactionStatus,
  type TransactionStatusCode,
} from "./codes.js";
import { ProtocolError } from "./errors.js";
import type { Frame } from "./framer.js";
import { type Reader, readFrame } from "./reader.js";
import { Writer } from "./writer.js";

// Builders are synchronous and the writer never rewrites a message it returned, so one writer serves all.
const w = new Writer();

/**
 * The fields of an ErrorResponse or NoticeResponse, named as in {@link ErrorField}. `severity`, `code`
 * (SQLSTATE) and `message` are always present; the others as the server chose.
 *
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export interface ErrorFields {
  readonly severity: string;
  readonly severityNonLocalized?: string | undefined;
  readonly code: string;
  readonly message: string;
  readonly detail?: string | undefined;
  readonly hint?: string | undefined;
  readonly position?: string | undefined;
  readonly internalPosition?: string | undefined;
  readonly internalQuery?: string | undefined;
  readonly where?: string | undefined;
  readonly schema?: string | undefined;
  readonly table?: string | undefined;
  readonly column?: string | undefined;
  readonly dataType?: string | undefined;
  readonly constraint?: string | undefined;
  readonly file?: string | undefined;
  readonly line?: string | undefined;
  readonly routine?: string | undefined;
}

/** A column of a RowDescription. */
export interface ColumnDescription {
  readonly name: string;
  /** OID of the source table, 0 for a computed column. */
  readonly tableOid: number;
  /** Attribute number in the source table, 0 for a computed column. */
  readonly columnAttribute: number;
  readonly dataTypeOid: number;
  /** pg_type.typlen: -1 for variable length. */
  readonly dataTypeSize: number;
  /** pg_attribute.atttypmod: -1 when not applicable. */
  readonly typeModifier: number;
  /** 0 text, 1 binary. */
  readonly format: number;
}

/** OID of `text`, the default column type of {@link buildRowDescription}. */
export const TEXT_OID = 25;

// ---------------------------------------------------------------------------------------------------------
// Builders (gateway → client)

/** AuthenticationOk, pre-built. */
export const AUTHENTICATION_OK: Buffer = w.int32(AuthenticationCode.Ok).finish(BackendMessage.Authentication);
/** AuthenticationCleartextPassword, pre-built. */
export const AUTHENTICATION_CLEARTEXT_PASSWORD: Buffer = w
  .int32(AuthenticationCode.CleartextPassword)
  .finish(BackendMessage.Authentication);
/** ParseComplete, pre-built. */
export const PARSE_COMPLETE: Buffer = w.finish(BackendMessage.ParseComplete);
/** BindComplete, pre-built. */
export const BIND_COMPLETE: Buffer = w.finish(BackendMessage.BindComplete);
/** CloseComplete, pre-built. */
export const CLOSE_COMPLETE: Buffer = w.finish(BackendMessage.CloseComplete);
/** NoData, pre-built. */
export const NO_DATA: Buffer = w.finish(BackendMessage.NoData);
/** EmptyQueryResponse, pre-built. */
export const EMPTY_QUERY_RESPONSE: Buffer = w.finish(BackendMessage.EmptyQueryResponse);

const READY: Readonly<Record<number, Buffer>> = {
  [TransactionStatus.Idle]: w.int8(TransactionStatus.Idle).finish(BackendMessage.ReadyForQuery),
  [TransactionStatus.InTransaction]: w
    .int8(TransactionStatus.InTransaction)
    .finish(BackendMessage.ReadyForQuery),
  [TransactionStatus.Failed]: w.int8(TransactionStatus.Failed).finish(BackendMessage.ReadyForQuery),
};

/** ReadyForQuery with a transaction status; returns one of three pre-built buffers. */
export function buildReadyForQuery(status: TransactionStatusCode): Buffer {
  const message = READY[status];
  if (message === undefined) throw new RangeError(`invalid transaction status ${status}`);
  return message;
}

/** AuthenticationMD5Password with the 4-byte salt. */
export function buildAuthenticationMD5Password(salt: Uint8Array): Buffer {
  if (salt.length !== 4) throw new RangeError(`an MD5 salt is 4 bytes, got ${salt.length}`);
  return w.int32(AuthenticationCode.MD5Password).bytes(salt).finish(BackendMessage.Authentication);
}

/** AuthenticationSASL offering `mechanisms`, e.g. `["SCRAM-SHA-256"]`. */
export function buildAuthenticationSASL(mechanisms: readonly string[]): Buffer {
  w.int32(AuthenticationCode.SASL);
  for (const mechanism of mechanisms) {
    if (mechanism === "") {
      w.reset();
      throw new TypeError("a SASL mechanism name cannot be empty");
    }
    w.cstring(mechanism);
  }
  return w.int8(0).finish(BackendMessage.Authentication);
}

/** AuthenticationSASLContinue carrying the mechanism's challenge. */
export function buildAuthenticationSASLContinue(data: Uint8Array): Buffer {
  return w.int32(AuthenticationCode.SASLContinue).bytes(data).finish(BackendMessage.Authentication);
}

/** AuthenticationSASLFinal carrying the mechanism's outcome (for SCRAM, the server signature). */
export function buildAuthenticationSASLFinal(data: Uint8Array): Buffer {
  return w.int32(AuthenticationCode.SASLFinal).bytes(data).finish(BackendMessage.Authentication);
}

/** ParameterStatus, e.g. `server_version`, `client_encoding`. */
export function buildParameterStatus(name: string, value: string): Buffer {
  return w.cstring(name).cstring(value).finish(BackendMessage.ParameterStatus);
}

/** BackendKeyData; `secretKey` is 4 bytes in protocol 3.0, up to 256 in 3.2. */
export function buildBackendKeyData(processId: number, secretKey: Uint8Array): Buffer {
  if (secretKey.length < 4 || secretKey.length > 256) {
    throw new RangeError(`a secret key is 4 to 256 bytes, got ${secretKey.length}`);
  }
  return w.int32(processId).bytes(secretKey).finish(BackendMessage.BackendKeyData);
}

/**
 * NegotiateProtocolVersion: the newest protocol version supported for the requested major (the whole
 * `major << 16 | minor` code, as PostgreSQL sends it; the docs call it the newest minor version), and the
 * requested `_pq_.` options that were not recognised.
 */
export function buildNegotiateProtocolVersion(
  protocolVersion: number,
  unrecognized: readonly string[] = [],
): Buffer {
  w.int32(protocolVersion).int32(unrecognized.length);
  for (const option of unrecognized) w.cstring(option);
  return w.finish(BackendMessage.NegotiateProtocolVersion);
}

const SQLSTATE = /^[0-9A-Z]{5}$/;
const FIELD_ORDER = Object.entries(ErrorField) as [ErrorFieldName, number][];

function buildFields(fields: ErrorFields, code: number): Buffer {
  if (!SQLSTATE.test(fields.code)) throw new RangeError(`not a SQLSTATE: "${fields.code}"`);
  for (const [name, byte] of FIELD_ORDER) {
    // PostgreSQL 9.6+ always sends the non-localized severity; clients may rely on it.
    const value =
      name === "severityNonLocalized" ? (fields.severityNonLocalized ?? fields.severity) : fields[name];
    if (value !== undefined) w.int8(byte).cstring(value);
  }
  return w.int8(0).finish(code);
}

/** ErrorResponse, fields in PostgreSQL's order; `severityNonLocalized` defaults to `severity`. */
export function buildErrorResponse(fields: ErrorFields): Buffer {
  return buildFields(fields, BackendMessage.ErrorResponse);
}

/** NoticeResponse, same fields as {@link buildErrorResponse}. */
export function buildNoticeResponse(fields: ErrorFields): Buffer {
  return buildFields(fields, BackendMessage.NoticeResponse);
}

/** CommandComplete with its tag, e.g. `SELECT 3`, `SHOW`. */
export function buildCommandComplete(tag: string): Buffer {
  return w.cstring(tag).finish(BackendMessage.CommandComplete);
}

/** RowDescription; a bare name describes a text column of a computed expression. */
export function buildRowDescription(
  columns: readonly (string | (Partial<ColumnDescription> & { readonly name: string }))[],
): Buffer {
  w.int16(columns.length);
  for (const column of columns) {
    const c = typeof column === "string" ? { name: column } : column;
    w.cstring(c.name)
      .int32(c.tableOid ?? 0)
      .int16(c.columnAttribute ?? 0)
      .int32(c.dataTypeOid ?? TEXT_OID)
      .int16(c.dataTypeSize ?? -1)
      .int32(c.typeModifier ?? -1)
      .int16(c.format ?? 0);
  }
  return w.finish(BackendMessage.RowDescription);
}

/** DataRow; strings are sent as UTF-8 (text format), `null` as SQL NULL. */
export function buildDataRow(values: readonly (string | Uint8Array | null)[]): Buffer {
  w.int16(values.length);
  for (const value of values) {
    if (value === null) w.int32(-1);
    else if (typeof value === "string") w.int32(Buffer.byteLength(value)).string(value);
    else w.int32(value.length).bytes(value);
  }
  return w.finish(BackendMessage.DataRow);
}

// ---------------------------------------------------------------------------------------------------------
// Parsers (server → gateway). Each checks the frame's type and reads it strictly. Buffers returned are views.

/** An Authentication request, by subtype. */
export type AuthenticationRequest =
  | { readonly type: "Ok" | "CleartextPassword" | "KerberosV5" | "GSS" | "SSPI" }
  | { readonly type: "MD5Password"; readonly salt: Buffer }
  | { readonly type: "SASL"; readonly mechanisms: string[] }
  | { readonly type: "SASLContinue" | "SASLFinal" | "GSSContinue"; readonly data: Buffer };

/** Authentication (`R`). Unknown subtypes throw `MALFORMED_MESSAGE`. */
export function parseAuthentication(frame: Frame): AuthenticationRequest {
  const r = readFrame(frame, BackendMessage.Authentication, "Authentication");
  const subtype = r.int32();
  switch (subtype) {
    case AuthenticationCode.Ok:
    case AuthenticationCode.CleartextPassword:
    case AuthenticationCode.KerberosV5:
    case AuthenticationCode.GSS:
    case AuthenticationCode.SSPI: {
      r.end();
      const names = { 0: "Ok", 2: "KerberosV5", 3: "CleartextPassword", 7: "GSS", 9: "SSPI" } as const;
      return { type: names[subtype] };
    }
    case AuthenticationCode.MD5Password: {
      const salt = r.bytes(4);
      r.end();
      return { type: "MD5Password", salt };
    }
    case AuthenticationCode.SASL: {
      const mechanisms: string[] = [];
      for (let name = r.cstring(); name !== ""; name = r.cstring()) mechanisms.push(name);
      r.end();
      return { type: "SASL", mechanisms };
    }
    case AuthenticationCode.SASLContinue:
      return { type: "SASLContinue", data: r.rest() };
    case AuthenticationCode.SASLFinal:
      return { type: "SASLFinal", data: r.rest() };
    case AuthenticationCode.GSSContinue:
      return { type: "GSSContinue", data: r.rest() };
    default:
      throw new ProtocolError("MALFORMED_MESSAGE", `Authentication: unknown request type ${subtype}`);
  }
}

/** ParameterStatus. */
export function parseParameterStatus(frame: Frame): { readonly name: string; readonly value: string } {
  const r = readFrame(frame, BackendMessage.ParameterStatus, "ParameterStatus");
  const name = r.cstring();
  const value = r.cstring();
  r.end();
  return { name, value };
}

/** BackendKeyData: what a CancelRequest must quote. */
export function parseBackendKeyData(frame: Frame): {
  readonly processId: number;
  readonly secretKey: Buffer;
} {
  const r = readFrame(frame, BackendMessage.BackendKeyData, "BackendKeyData");
  const processId = r.int32();
  const secretKey = r.rest();
  if (secretKey.length < 4 || secretKey.length > 256) {
    throw new ProtocolError(
      "MALFORMED_MESSAGE",
      `BackendKeyData: invalid secret key length ${secretKey.length}`,
    );
  }
  return { processId, secretKey };
}

/** NegotiateProtocolVersion; see {@link buildNegotiateProtocolVersion} for the version's form. */
export function parseNegotiateProtocolVersion(frame: Frame): {
  readonly protocolVersion: number;
  readonly unrecognized: string[];
} {
  const r = readFrame(frame, BackendMessage.NegotiateProtocolVersion, "NegotiateProtocolVersion");
  const protocolVersion = r.int32();
  const count = r.int32();
  const unrecognized: string[] = [];
  for (let i = 0; i < count; i++) unrecognized.push(r.cstring());
  r.end();
  return { protocolVersion, unrecognized };
}

/** ReadyForQuery: the transaction status. */
export function parseReadyForQuery(frame: Frame): TransactionStatusCode {
  const r = readFrame(frame, BackendMessage.ReadyForQuery, "ReadyForQuery");
  const status = r.int8();
  r.end();
  if (
    status !== TransactionStatus.Idle &&
    status !== TransactionStatus.InTransaction &&
    status !== TransactionStatus.Failed
  ) {
    throw new ProtocolError("MALFORMED_MESSAGE", `ReadyForQuery: invalid status 0x${status.toString(16)}`);
  }
  return status;
}

function readFields(r: Reader, message: string): ErrorFields {
  const fields: Partial<Record<ErrorFieldName, string>> = {};
  for (let type = r.int8(); type !== 0; type = r.int8()) {
    const value = r.cstring();
    // Unknown field types are to be ignored: later servers may add some.
    const name = errorFieldName(type);
    if (name !== undefined) fields[name] = value;
  }
  r.end();
  const { severity, code, message: text } = fields;
  if (severity === undefined || code === undefined || text === undefined) {
    throw new ProtocolError("MALFORMED_MESSAGE", `${message}: severity, code or message missing`);
  }
  return { ...fields, severity, code, message: text };
}

/** ErrorResponse. */
export function parseErrorResponse(frame: Frame): ErrorFields {
  return readFields(readFrame(frame, BackendMessage.ErrorResponse, "ErrorResponse"), "ErrorResponse");
}

/** NoticeResponse. */
export function parseNoticeResponse(frame: Frame): ErrorFields {
  return readFields(readFrame(frame, BackendMessage.NoticeResponse, "NoticeResponse"), "NoticeResponse");
}

/** CommandComplete: the command tag. */
export function parseCommandComplete(frame: Frame): string {
  const r = readFrame(frame, BackendMessage.CommandComplete, "CommandComplete");
  const tag = r.cstring();
  r.end();
  return tag;
}

/** RowDescription. */
export function parseRowDescription(frame: Frame): ColumnDescription[] {
  const r = readFrame(frame, BackendMessage.RowDescription, "RowDescription");
  const count = r.uint16();
  const columns: ColumnDescription[] = [];
  for (let i = 0; i < count; i++) {
    columns.push({
      name: r.cstring(),
      tableOid: r.uint32(),
      columnAttribute: r.int16(),
      dataTypeOid: r.uint32(),
      dataTypeSize: r.int16(),
      typeModifier: r.int32(),
      format: r.int16(),
    });
  }
  r.end();
  return columns;
}

/** DataRow with values decoded as UTF-8 (text format); `null` for SQL NULL. */
export function parseDataRow(frame: Frame): (string | null)[] {
  const r = readFrame(frame, BackendMessage.DataRow, "DataRow");
  const count = r.uint16();
  const values: (string | null)[] = [];
  for (let i = 0; i < count; i++) {
    const length = r.int32();
    values.push(length === -1 ? null : r.string(length));
  }
  r.end();
  return values;
}

/** Checks a message that carries nothing (ParseComplete, BindComplete, CloseComplete, NoData, …). */
export function parseEmptyMessage(frame: Frame, code: number, name = "message"): void {
  readFrame(frame, code, name).end();
}
