// Messages a frontend sends: built here when the gateway talks to a server, parsed here when a client
// talks to the gateway.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html
import {
  CANCEL_REQUEST_CODE,
  FrontendMessage,
  GSSENC_REQUEST_CODE,
  PROTOCOL_VERSION_3,
  SSL_REQUEST_CODE,
} from "./codes.js";
import { ProtocolError } from "./errors.js";
import type { Frame } from "./framer.js";
import { Reader, readFrame } from "./reader.js";
import { Writer } from "./writer.js";

// Builders are synchronous and the writer never rewrites a message it returned, so one writer serves all.
const w = new Writer();

/** `S` names a prepared statement, `P` a portal (Describe and Close). */
export type PortalOrStatement = "S" | "P";

/** StartupMessage parameters, e.g. `{ user: "app", database: "db", application_name: "x" }`. */
export type StartupParameters = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

// ---------------------------------------------------------------------------------------------------------
// Builders (gateway → server)

/** SSLRequest, pre-built: `00 00 00 08 04 d2 16 2f`. The server answers one byte, `S` or `N`. */
export const SSL_REQUEST: Buffer = w.int32(SSL_REQUEST_CODE).finishStartup();
/** GSSENCRequest, pre-built. The server answers one byte, `G` or `N`. */
export const GSSENC_REQUEST: Buffer = w.int32(GSSENC_REQUEST_CODE).finishStartup();
/** Sync, pre-built. */
export const SYNC: Buffer = w.finish(FrontendMessage.Sync);
/** Flush, pre-built. */
export const FLUSH: Buffer = w.finish(FrontendMessage.Flush);
/** Terminate, pre-built. */
export const TERMINATE: Buffer = w.finish(FrontendMessage.Terminate);

/**
 * StartupMessage. Parameter names must be non-empty (an empty name ends the list on the wire).
 *
 * @param protocolVersion major in the high 16 bits, minor in the low; default 3.0
 */
export function buildStartupMessage(
  parameters: StartupParameters,
  protocolVersion: number = PROTOCOL_VERSION_3,
): Buffer {
  w.int32(protocolVersion);
  const entries = parameters instanceof Map ? parameters.entries() : Object.entries(parameters);
  for (const [name, value] of entries as Iterable<[string, string]>) {
    if (name === "") {
      w.reset();
      throw new TypeError("a startup parameter name cannot be empty");
    }
    w.cstring(name).cstring(value);
  }
  return w.int8(0).finishStartup();
}

/**
 * CancelRequest, sent on a new connection.
 *
 * @param secretKey from BackendKeyData: 4 bytes in protocol 3.0, up to 256 in 3.2
 */
export function buildCancelRequest(processId: number, secretKey: Uint8Array): Buffer {
  return w.int32(CANCEL_REQUEST_CODE).int32(processId).bytes(secretKey).finishStartup();
}

/** PasswordMessage: a cleartext password, or `"md5" + hex digest` for MD5 authentication. */
export function buildPasswordMessage(password: string): Buffer {
  return w.cstring(password).finish(FrontendMessage.Password);
}

/** SASLInitialResponse: the chosen mechanism and its first message (`null`: none). */
export function buildSASLInitialResponse(mechanism: string, data: Uint8Array | null): Buffer {
  w.cstring(mechanism);
  if (data === null) w.int32(-1);
  else w.int32(data.length).bytes(data);
  return w.finish(FrontendMessage.Password);
}

/** SASLResponse: the next message of the SASL exchange. */
export function buildSASLResponse(data: Uint8Array): Buffer {
  return w.bytes(data).finish(FrontendMessage.Password);
}

/** Query (simple query protocol). */
export function buildQuery(text: string): Buffer {
  return w.cstring(text).finish(FrontendMessage.Query);
}

/** Parse: prepares `query` as statement `name` (`""`: the unnamed statement). A type OID of 0 lets the server infer it. */
export function buildParse(name: string, query: string, paramTypes: readonly number[] = []): Buffer {
  w.cstring(name).cstring(query).int16(paramTypes.length);
  for (const oid of paramTypes) w.int32(oid);
  return w.finish(FrontendMessage.Parse);
}

/** What {@link buildBind} binds. Strings are sent as UTF-8; `null` is SQL NULL. */
export interface BindOptions {
  readonly portal?: string;
  readonly statement?: string;
  /** Per-parameter format codes (0 text, 1 binary); empty: all text; one: applies to all. */
  readonly paramFormats?: readonly number[];
  readonly params?: readonly (string | Uint8Array | null)[];
  /** Per-column result format codes, same conventions. */
  readonly resultFormats?: readonly number[];
}

/** Bind: creates a portal from a prepared statement. */
export function buildBind(options: BindOptions = {}): Buffer {
  const { paramFormats = [], params = [], resultFormats = [] } = options;
  w.cstring(options.portal ?? "").cstring(options.statement ?? "");
  w.int16(paramFormats.length);
  for (const format of paramFormats) w.int16(format);
  w.int16(params.length);
  for (const param of params) {
    if (param === null) {
      w.int32(-1);
    } else if (typeof param === "string") {
      w.int32(Buffer.byteLength(param)).string(param);
    } else {
      w.int32(param.length).bytes(param);
    }
  }
  w.int16(resultFormats.length);
  for (const format of resultFormats) w.int16(format);
  return w.finish(FrontendMessage.Bind);
}

/** Execute: runs a portal; `maxRows` 0 means no limit. */
export function buildExecute(portal = "", maxRows = 0): Buffer {
  return w.cstring(portal).int32(maxRows).finish(FrontendMessage.Execute);
}

/** Describe a prepared statement (`S`) or portal (`P`). */
export function buildDescribe(kind: PortalOrStatement, name = ""): Buffer {
  return w.int8(kind.charCodeAt(0)).cstring(name).finish(FrontendMessage.Describe);
}

/** Close a prepared statement (`S`) or portal (`P`). */
export function buildClose(kind: PortalOrStatement, name = ""): Buffer {
  return w.int8(kind.charCodeAt(0)).cstring(name).finish(FrontendMessage.Close);
}

// ---------------------------------------------------------------------------------------------------------
// Parsers (client → gateway). Each takes a frame from MessageFramer, checks its type and reads it strictly:
// a truncated field, a missing NUL or trailing bytes throw ProtocolError. Buffers returned are views.

/** A parsed StartupMessage. */
export interface StartupMessage {
  /** Major in the high 16 bits (always 3 here), minor in the low. */
  readonly protocolVersion: number;
  readonly minorVersion: number;
  /** In the order sent; `user` is required by PostgreSQL, the rest optional. */
  readonly parameters: Map<string, string>;
}

/**
 * StartupMessage from a startup-mode frame. Throws `UNSUPPORTED_PROTOCOL` (SQLSTATE 0A000) for a major
 * version other than 3, `UNEXPECTED_MESSAGE` for an SSLRequest, GSSENCRequest or CancelRequest, and
 * `MALFORMED_MESSAGE` unless the parameters are NUL-terminated name/value pairs ending with an empty name,
 * each name given once (a repeated name is ambiguous, and a proxy must not read it differently from the
 * server).
 */
export function parseStartupMessage(frame: Frame): StartupMessage {
  const code = frame.code;
  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE || code === CANCEL_REQUEST_CODE) {
    throw new ProtocolError("UNEXPECTED_MESSAGE", "expected StartupMessage, got a special request");
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new ProtocolError(
      "UNSUPPORTED_PROTOCOL",
      `unsupported frontend protocol ${major}.${minor}: only 3.x is supported`,
    );
  }
  const r = new Reader(frame.payload, "StartupMessage");
  const parameters = new Map<string, string>();
  for (;;) {
    const name = r.cstring();
    if (name === "") break;
    const value = r.cstring();
    if (parameters.has(name)) {
      throw new ProtocolError("MALFORMED_MESSAGE", `StartupMessage: parameter "${name}" given twice`);
    }
    parameters.set(name, value);
  }
  r.end();
  return { protocolVersion: code, minorVersion: minor, parameters };
}

/** A parsed CancelRequest. */
export interface CancelRequest {
  readonly processId: number;
  /** 4 bytes in protocol 3.0, up to 256 in 3.2. */
  readonly secretKey: Buffer;
}

/** CancelRequest from a startup-mode frame. */
export function parseCancelRequest(frame: Frame): CancelRequest {
  const r = readFrame(frame, CANCEL_REQUEST_CODE, "CancelRequest");
  const processId = r.int32();
  const secretKey = r.rest();
  if (secretKey.length < 4 || secretKey.length > 256) {
    throw new ProtocolError(
      "MALFORMED_MESSAGE",
      `CancelRequest: invalid secret key length ${secretKey.length}`,
    );
  }
  return { processId, secretKey };
}

/** Query: the SQL text. */
export function parseQuery(frame: Frame): string {
  const r = readFrame(frame, FrontendMessage.Query, "Query");
  const text = r.cstring();
  r.end();
  return text;
}

/** A parsed Parse. */
export interface ParseMessage {
  /** Statement name, `""` for the unnamed statement. */
  readonly name: string;
  readonly query: string;
  /** Parameter type OIDs, 0 where unspecified. */
  readonly paramTypes: number[];
}

/** Parse. */
export function parseParse(frame: Frame): ParseMessage {
  const r = readFrame(frame, FrontendMessage.Parse, "Parse");
  const name = r.cstring();
  const query = r.cstring();
  const count = r.uint16();
  if (r.remaining !== count * 4) {
    throw new ProtocolError(
      "MALFORMED_MESSAGE",
      `Parse: ${count} parameter types need ${count * 4} bytes, got ${r.remaining}`,
    );
  }
  const paramTypes = new Array<number>(count);
  for (let i = 0; i < count; i++) paramTypes[i] = r.uint32();
  return { name, query, paramTypes };
}

/** The names in a Bind; parameters and formats are left undecoded. */
export interface BindMessage {
  readonly portal: string;
  readonly statement: string;
}

/** Bind: only the portal and statement names, which a pooler tracks; the rest is not decoded. */
export function parseBind(frame: Frame): BindMessage {
  const r = readFrame(frame, FrontendMessage.Bind, "Bind");
  const portal = r.cstring();
  const statement = r.cstring();
  return { portal, statement };
}

/** A parsed Describe or Close. */
export interface DescribeOrClose {
  readonly kind: PortalOrStatement;
  readonly name: string;
}

function readTarget(r: Reader, message: string): DescribeOrClose {
  const kind = r.int8();
  if (kind !== 0x53 && kind !== 0x50) {
    throw new ProtocolError("MALFORMED_MESSAGE", `${message}: invalid target type 0x${kind.toString(16)}`);
  }
  const name = r.cstring();
  r.end();
  return { kind: kind === 0x53 ? "S" : "P", name };
}

/** Describe. */
export function parseDescribe(frame: Frame): DescribeOrClose {
  return readTarget(readFrame(frame, FrontendMessage.Describe, "Describe"), "Describe");
}

/** Close. */
export function parseClose(frame: Frame): DescribeOrClose {
  return readTarget(readFrame(frame, FrontendMessage.Close, "Close"), "Close");
}

/** A parsed Execute. */
export interface ExecuteMessage {
  readonly portal: string;
  /** 0: no limit. */
  readonly maxRows: number;
}

/** Execute. */
export function parseExecute(frame: Frame): ExecuteMessage {
  const r = readFrame(frame, FrontendMessage.Execute, "Execute");
  const portal = r.cstring();
  const maxRows = r.int32();
  r.end();
  return { portal, maxRows };
}

/** PasswordMessage (answer to AuthenticationCleartextPassword or MD5Password): the password string. */
export function parsePasswordMessage(frame: Frame): string {
  const r = readFrame(frame, FrontendMessage.Password, "PasswordMessage");
  const password = r.cstring();
  r.end();
  return password;
}

/** A parsed SASLInitialResponse. */
export interface SASLInitialResponse {
  readonly mechanism: string;
  /** The mechanism's first message; `null` when the client sent none (length -1). */
  readonly data: Buffer | null;
}

/** SASLInitialResponse (answer to AuthenticationSASL). */
export function parseSASLInitialResponse(frame: Frame): SASLInitialResponse {
  const r = readFrame(frame, FrontendMessage.Password, "SASLInitialResponse");
  const mechanism = r.cstring();
  const length = r.int32();
  const data = length === -1 ? null : r.bytes(length);
  r.end();
  return { mechanism, data };
}

/** SASLResponse (answer to AuthenticationSASLContinue): the mechanism's message. */
export function parseSASLResponse(frame: Frame): Buffer {
  return readFrame(frame, FrontendMessage.Password, "SASLResponse").rest();
}
