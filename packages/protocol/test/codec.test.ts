import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  AUTHENTICATION_CLEARTEXT_PASSWORD,
  AUTHENTICATION_OK,
  BackendMessage,
  BIND_COMPLETE,
  backendMessageName,
  buildAuthenticationMD5Password,
  buildAuthenticationSASL,
  buildAuthenticationSASLContinue,
  buildAuthenticationSASLFinal,
  buildBackendKeyData,
  buildBind,
  buildCancelRequest,
  buildClose,
  buildCommandComplete,
  buildDataRow,
  buildDescribe,
  buildErrorResponse,
  buildExecute,
  buildNegotiateProtocolVersion,
  buildNoticeResponse,
  buildParameterStatus,
  buildParse,
  buildPasswordMessage,
  buildQuery,
  buildReadyForQuery,
  buildRowDescription,
  buildSASLInitialResponse,
  buildSASLResponse,
  buildStartupMessage,
  CANCEL_REQUEST_CODE,
  CLOSE_COMPLETE,
  EMPTY_QUERY_RESPONSE,
  type ErrorFields,
  errorFieldName,
  FLUSH,
  type Frame,
  FrontendMessage,
  frontendMessageName,
  GSSENC_REQUEST,
  MessageFramer,
  NO_DATA,
  PARSE_COMPLETE,
  PROTOCOL_VERSION_3,
  ProtocolError,
  type ProtocolErrorCode,
  parseAuthentication,
  parseBackendKeyData,
  parseBind,
  parseCancelRequest,
  parseClose,
  parseCommandComplete,
  parseDataRow,
  parseDescribe,
  parseEmptyMessage,
  parseErrorResponse,
  parseExecute,
  parseNegotiateProtocolVersion,
  parseNoticeResponse,
  parseParameterStatus,
  parseParse,
  parsePasswordMessage,
  parseQuery,
  parseReadyForQuery,
  parseRowDescription,
  parseSASLInitialResponse,
  parseSASLResponse,
  parseStartupMessage,
  Reader,
  SSL_REQUEST,
  SYNC,
  TERMINATE,
  TransactionStatus,
  Writer,
} from "../src/index.ts";

/** Frames one whole message and checks it is exactly one. */
function frame(message: Buffer, startup = false): Frame {
  const frames: Frame[] = [];
  new MessageFramer({ startup }).push(message, (f) => frames.push(f));
  assert.equal(frames.length, 1);
  return frames[0] as Frame;
}

/** A frame with an arbitrary payload. */
const raw = (code: string | number, payload: Buffer | string): Frame => {
  const bytes = typeof payload === "string" ? Buffer.from(payload, "latin1") : payload;
  return {
    code: typeof code === "string" ? code.charCodeAt(0) : code,
    length: bytes.length + 4,
    payload: bytes,
  };
};

function throwsProtocol(fn: () => unknown, code: ProtocolErrorCode, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

describe("byte-exact messages", () => {
  it("ReadyForQuery is Z 00 00 00 05 I", () => {
    assert.deepEqual(buildReadyForQuery(TransactionStatus.Idle), Buffer.from("Z\0\0\0\x05I", "latin1"));
    assert.deepEqual(buildReadyForQuery(TransactionStatus.Failed), Buffer.from("Z\0\0\0\x05E", "latin1"));
  });

  it("SSLRequest and GSSENCRequest are length 8 and 1234.5679 / 1234.5680", () => {
    assert.deepEqual(SSL_REQUEST, hex("00000008 04d2162f"));
    assert.deepEqual(GSSENC_REQUEST, hex("00000008 04d21630"));
  });

  it("CancelRequest is length 16, 1234.5678, pid, key", () => {
    assert.deepEqual(
      buildCancelRequest(0x01020304, hex("deadbeef")),
      hex("00000010 04d2162e 01020304 deadbeef"),
    );
  });

  it("Sync, Flush, Terminate, Query", () => {
    assert.deepEqual(SYNC, Buffer.from("S\0\0\0\x04", "latin1"));
    assert.deepEqual(FLUSH, Buffer.from("H\0\0\0\x04", "latin1"));
    assert.deepEqual(TERMINATE, Buffer.from("X\0\0\0\x04", "latin1"));
    assert.deepEqual(buildQuery("select 1"), Buffer.from("Q\0\0\0\x0dselect 1\0", "latin1"));
  });

  it("StartupMessage: length, version 3.0, pairs, terminator", () => {
    assert.deepEqual(
      buildStartupMessage({ user: "u", database: "d" }),
      Buffer.from("\0\0\0\x1b\0\x03\0\0user\0u\0database\0d\0\0", "latin1"),
    );
  });

  it("ErrorResponse: fields in PostgreSQL's order, V defaulting to S, then a terminating NUL", () => {
    const expected = Buffer.from(
      'E\0\0\0\x3bSERROR\0VERROR\0C42P01\0Mrelation "t" does not exist\0P15\0\0',
      "latin1",
    );
    const built = buildErrorResponse({
      position: "15",
      message: 'relation "t" does not exist',
      code: "42P01",
      severity: "ERROR",
    });
    assert.deepEqual(built, expected);
    assert.deepEqual(parseErrorResponse(frame(expected)), {
      severity: "ERROR",
      severityNonLocalized: "ERROR",
      code: "42P01",
      message: 'relation "t" does not exist',
      position: "15",
    });
  });

  it("ParseComplete, BindComplete, CloseComplete, NoData, EmptyQueryResponse, AuthenticationOk", () => {
    assert.deepEqual(PARSE_COMPLETE, Buffer.from("1\0\0\0\x04", "latin1"));
    assert.deepEqual(BIND_COMPLETE, Buffer.from("2\0\0\0\x04", "latin1"));
    assert.deepEqual(CLOSE_COMPLETE, Buffer.from("3\0\0\0\x04", "latin1"));
    assert.deepEqual(NO_DATA, Buffer.from("n\0\0\0\x04", "latin1"));
    assert.deepEqual(EMPTY_QUERY_RESPONSE, Buffer.from("I\0\0\0\x04", "latin1"));
    assert.deepEqual(AUTHENTICATION_OK, Buffer.from("R\0\0\0\x08\0\0\0\0", "latin1"));
  });
});

describe("round trips, builder → framer → parser", () => {
  it("StartupMessage, with UTF-8 and a 3.2 version", () => {
    const params = new Map([
      ["user", "pgbind"],
      ["database", "dé mo"],
      ["options", "-c search_path=x"],
    ]);
    assert.deepEqual(parseStartupMessage(frame(buildStartupMessage(params), true)), {
      protocolVersion: PROTOCOL_VERSION_3,
      minorVersion: 0,
      parameters: params,
    });
    const v32 = parseStartupMessage(frame(buildStartupMessage({ user: "u" }, PROTOCOL_VERSION_3 + 2), true));
    assert.equal(v32.minorVersion, 2);
    assert.deepEqual([...v32.parameters], [["user", "u"]]);
  });

  it("CancelRequest with a 4-byte and a 32-byte (protocol 3.2) key", () => {
    for (const key of [hex("01020304"), Buffer.alloc(32, 7)]) {
      const parsed = parseCancelRequest(frame(buildCancelRequest(-5, key), true));
      assert.equal(parsed.processId, -5);
      assert.deepEqual(parsed.secretKey, key);
    }
  });

  it("frontend messages", () => {
    assert.equal(parseQuery(frame(buildQuery("select 'ünïcødé'"))), "select 'ünïcødé'");
    assert.deepEqual(parseParse(frame(buildParse("s1", "select $1, $2", [23, 0xffffffff]))), {
      name: "s1",
      query: "select $1, $2",
      paramTypes: [23, 0xffffffff],
    });
    assert.deepEqual(parseParse(frame(buildParse("", "select 1"))), {
      name: "",
      query: "select 1",
      paramTypes: [],
    });
    assert.deepEqual(
      parseBind(
        frame(buildBind({ portal: "p", statement: "s1", paramFormats: [1], params: [hex("00"), null, "x"] })),
      ),
      { portal: "p", statement: "s1" },
    );
    assert.deepEqual(parseBind(frame(buildBind())), { portal: "", statement: "" });
    assert.deepEqual(parseDescribe(frame(buildDescribe("S", "s1"))), { kind: "S", name: "s1" });
    assert.deepEqual(parseDescribe(frame(buildDescribe("P"))), { kind: "P", name: "" });
    assert.deepEqual(parseClose(frame(buildClose("P", "portal"))), { kind: "P", name: "portal" });
    assert.deepEqual(parseExecute(frame(buildExecute("p", 100))), { portal: "p", maxRows: 100 });
    assert.deepEqual(parseExecute(frame(buildExecute())), { portal: "", maxRows: 0 });
    assert.equal(parsePasswordMessage(frame(buildPasswordMessage("md5abc"))), "md5abc");
    assert.deepEqual(
      parseSASLInitialResponse(frame(buildSASLInitialResponse("SCRAM-SHA-256", Buffer.from("n,,n=,r=x")))),
      {
        mechanism: "SCRAM-SHA-256",
        data: Buffer.from("n,,n=,r=x"),
      },
    );
    assert.deepEqual(parseSASLInitialResponse(frame(buildSASLInitialResponse("X", null))), {
      mechanism: "X",
      data: null,
    });
    assert.deepEqual(
      parseSASLResponse(frame(buildSASLResponse(Buffer.from("c=biws")))),
      Buffer.from("c=biws"),
    );
    for (const [message, code] of [
      [SYNC, FrontendMessage.Sync],
      [FLUSH, FrontendMessage.Flush],
      [TERMINATE, FrontendMessage.Terminate],
    ] as const) {
      parseEmptyMessage(frame(message), code);
    }
  });

  it("authentication requests", () => {
    assert.deepEqual(parseAuthentication(frame(AUTHENTICATION_OK)), { type: "Ok" });
    assert.deepEqual(parseAuthentication(frame(AUTHENTICATION_CLEARTEXT_PASSWORD)), {
      type: "CleartextPassword",
    });
    assert.deepEqual(parseAuthentication(frame(buildAuthenticationMD5Password(hex("0a0b0c0d")))), {
      type: "MD5Password",
      salt: hex("0a0b0c0d"),
    });
    assert.deepEqual(
      parseAuthentication(frame(buildAuthenticationSASL(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))),
      {
        type: "SASL",
        mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"],
      },
    );
    assert.deepEqual(
      parseAuthentication(frame(buildAuthenticationSASLContinue(Buffer.from("r=abc,s=x,i=4096")))),
      {
        type: "SASLContinue",
        data: Buffer.from("r=abc,s=x,i=4096"),
      },
    );
    assert.deepEqual(parseAuthentication(frame(buildAuthenticationSASLFinal(Buffer.from("v=sig")))), {
      type: "SASLFinal",
      data: Buffer.from("v=sig"),
    });
  });

  it("backend messages", () => {
    assert.deepEqual(parseParameterStatus(frame(buildParameterStatus("TimeZone", "Europe/Zürich"))), {
      name: "TimeZone",
      value: "Europe/Zürich",
    });
    assert.deepEqual(parseBackendKeyData(frame(buildBackendKeyData(12345, hex("cafebabe")))), {
      processId: 12345,
      secretKey: hex("cafebabe"),
    });
    for (const status of Object.values(TransactionStatus)) {
      assert.equal(parseReadyForQuery(frame(buildReadyForQuery(status))), status);
    }
    assert.equal(parseCommandComplete(frame(buildCommandComplete("INSERT 0 3"))), "INSERT 0 3");
    assert.deepEqual(
      parseNegotiateProtocolVersion(frame(buildNegotiateProtocolVersion(PROTOCOL_VERSION_3, ["_pq_.x"]))),
      {
        protocolVersion: PROTOCOL_VERSION_3,
        unrecognized: ["_pq_.x"],
      },
    );
    for (const [message, code] of [
      [PARSE_COMPLETE, BackendMessage.ParseComplete],
      [BIND_COMPLETE, BackendMessage.BindComplete],
      [CLOSE_COMPLETE, BackendMessage.CloseComplete],
      [NO_DATA, BackendMessage.NoData],
      [EMPTY_QUERY_RESPONSE, BackendMessage.EmptyQueryResponse],
    ] as const) {
      parseEmptyMessage(frame(message), code);
    }
  });

  it("ErrorResponse and NoticeResponse with every field", () => {
    const all: ErrorFields = {
      severity: "FEHLER",
      severityNonLocalized: "ERROR",
      code: "23505",
      message: "duplicate key",
      detail: "Key (id)=(1) already exists.",
      hint: "h",
      position: "1",
      internalPosition: "2",
      internalQuery: "iq",
      where: "w",
      schema: "public",
      table: "t",
      column: "id",
      dataType: "int4",
      constraint: "t_pkey",
      file: "nbtinsert.c",
      line: "666",
      routine: "_bt_check_unique",
    };
    assert.deepEqual(parseErrorResponse(frame(buildErrorResponse(all))), all);
    assert.deepEqual(
      parseNoticeResponse(frame(buildNoticeResponse({ ...all, severity: "NOTICE", detail: undefined }))),
      {
        ...Object.fromEntries(Object.entries(all).filter(([k]) => k !== "detail")),
        severity: "NOTICE",
      },
    );
  });

  it("RowDescription and DataRow, text columns by default", () => {
    const columns = parseRowDescription(
      frame(
        buildRowDescription([
          "name",
          { name: "n", dataTypeOid: 23, dataTypeSize: 4, tableOid: 16384, columnAttribute: 2 },
        ]),
      ),
    );
    assert.deepEqual(columns, [
      {
        name: "name",
        tableOid: 0,
        columnAttribute: 0,
        dataTypeOid: 25,
        dataTypeSize: -1,
        typeModifier: -1,
        format: 0,
      },
      {
        name: "n",
        tableOid: 16384,
        columnAttribute: 2,
        dataTypeOid: 23,
        dataTypeSize: 4,
        typeModifier: -1,
        format: 0,
      },
    ]);
    assert.deepEqual(parseDataRow(frame(buildDataRow(["a", null, "", "€", Buffer.from("raw")]))), [
      "a",
      null,
      "",
      "€",
      "raw",
    ]);
    assert.deepEqual(parseDataRow(frame(buildDataRow([]))), []);
  });

  it("ProtocolError → ErrorResponse", () => {
    const error = new ProtocolError("UNSUPPORTED_PROTOCOL", "unsupported frontend protocol 4.0");
    assert.equal(error.sqlstate, "0A000");
    assert.equal(new ProtocolError("MALFORMED_MESSAGE", "x").sqlstate, "08P01");
    const parsed = parseErrorResponse(frame(buildErrorResponse(error.toErrorFields())));
    assert.deepEqual(parsed, {
      severity: "FATAL",
      severityNonLocalized: "FATAL",
      code: "0A000",
      message: "unsupported frontend protocol 4.0",
    });
  });
});

describe("malformed input throws ProtocolError, never RangeError", () => {
  it("a string without its NUL", () => {
    throwsProtocol(
      () => parseQuery(raw("Q", "select 1")),
      "MALFORMED_MESSAGE",
      /Query: string at offset 0 has no NUL/,
    );
    throwsProtocol(() => parseCommandComplete(raw("C", "")), "MALFORMED_MESSAGE");
    throwsProtocol(() => parseParameterStatus(raw("S", "name\0value")), "MALFORMED_MESSAGE");
  });

  it("a truncated integer", () => {
    throwsProtocol(
      () => parseBackendKeyData(raw("K", "\0\0\0")),
      "MALFORMED_MESSAGE",
      /truncated, needs 4 bytes/,
    );
    throwsProtocol(() => parseExecute(raw("E", "\0\0\0")), "MALFORMED_MESSAGE");
    throwsProtocol(() => parseReadyForQuery(raw("Z", "")), "MALFORMED_MESSAGE");
    throwsProtocol(() => parseAuthentication(raw("R", "\0\0")), "MALFORMED_MESSAGE");
  });

  it("counts and lengths that overrun the payload", () => {
    throwsProtocol(
      () => parseParse(raw("P", "s\0q\0\0\x02\0\0\0\x17")),
      "MALFORMED_MESSAGE",
      /2 parameter types/,
    );
    throwsProtocol(() => parseDataRow(raw("D", "\0\x01\0\0\0\x09abc")), "MALFORMED_MESSAGE");
    throwsProtocol(
      () => parseDataRow(raw("D", "\0\x01\xff\xff\xff\xfe")),
      "MALFORMED_MESSAGE",
      /invalid length -2/,
    );
    throwsProtocol(() => parseSASLInitialResponse(raw("p", "M\0\0\0\0\x05ab")), "MALFORMED_MESSAGE");
    throwsProtocol(() => parseRowDescription(raw("T", "\0\x01a\0\0\0")), "MALFORMED_MESSAGE");
  });

  it("trailing bytes and bad enum values", () => {
    throwsProtocol(() => parseQuery(raw("Q", "a\0b")), "MALFORMED_MESSAGE", /1 unexpected trailing bytes/);
    throwsProtocol(() => parseDescribe(raw("D", "Xname\0")), "MALFORMED_MESSAGE", /invalid target type 0x58/);
    throwsProtocol(() => parseReadyForQuery(raw("Z", "X")), "MALFORMED_MESSAGE");
    throwsProtocol(
      () => parseAuthentication(raw("R", "\0\0\0\x63")),
      "MALFORMED_MESSAGE",
      /unknown request type 99/,
    );
    throwsProtocol(() => parseAuthentication(raw("R", "\0\0\0\x05ab")), "MALFORMED_MESSAGE");
    throwsProtocol(() => parseEmptyMessage(raw("1", "x"), BackendMessage.ParseComplete), "MALFORMED_MESSAGE");
    throwsProtocol(() => parseErrorResponse(raw("E", "SERROR\0\0")), "MALFORMED_MESSAGE", /missing/);
    throwsProtocol(
      () => parseBackendKeyData(raw("K", "\0\0\0\x01abc")),
      "MALFORMED_MESSAGE",
      /secret key length 3/,
    );
  });

  it("the wrong message type", () => {
    throwsProtocol(
      () => parseQuery(frame(buildParse("", "x"))),
      "UNEXPECTED_MESSAGE",
      /expected Query, got message 'P'/,
    );
    throwsProtocol(() => parseReadyForQuery(frame(SYNC)), "UNEXPECTED_MESSAGE");
    throwsProtocol(
      () => parseCancelRequest(frame(buildStartupMessage({ user: "u" }), true)),
      "UNEXPECTED_MESSAGE",
    );
    throwsProtocol(() => parseStartupMessage(frame(SSL_REQUEST, true)), "UNEXPECTED_MESSAGE");
  });

  it("StartupMessage: version, layout, duplicates", () => {
    const startup = (version: number, body: string): Frame => raw(version, Buffer.from(body, "latin1"));
    throwsProtocol(
      () => parseStartupMessage(startup(0x00020000, "user\0u\0\0")),
      "UNSUPPORTED_PROTOCOL",
      /unsupported frontend protocol 2.0/,
    );
    throwsProtocol(() => parseStartupMessage(startup(0x00040000, "\0")), "UNSUPPORTED_PROTOCOL");
    throwsProtocol(() => parseStartupMessage(startup(PROTOCOL_VERSION_3, "user\0u\0")), "MALFORMED_MESSAGE"); // no terminator
    throwsProtocol(() => parseStartupMessage(startup(PROTOCOL_VERSION_3, "user\0u")), "MALFORMED_MESSAGE");
    throwsProtocol(() => parseStartupMessage(startup(PROTOCOL_VERSION_3, "user\0\0")), "MALFORMED_MESSAGE"); // name, no value
    throwsProtocol(
      () => parseStartupMessage(startup(PROTOCOL_VERSION_3, "user\0u\0\0x")),
      "MALFORMED_MESSAGE",
      /trailing/,
    );
    throwsProtocol(
      () => parseStartupMessage(startup(PROTOCOL_VERSION_3, "user\0a\0user\0b\0\0")),
      "MALFORMED_MESSAGE",
      /"user" given twice/,
    );
    assert.equal(parseStartupMessage(startup(PROTOCOL_VERSION_3, "\0")).parameters.size, 0);
  });

  it("every parser, on random payloads, returns or throws ProtocolError (fast-check)", () => {
    const parsers: [string, (f: Frame) => unknown][] = [
      ["\0\x03\0\0", parseStartupMessage],
      ["Q", parseQuery],
      ["P", parseParse],
      ["B", parseBind],
      ["D", parseDescribe],
      ["C", parseClose],
      ["E", parseExecute],
      ["p", parsePasswordMessage],
      ["p", parseSASLInitialResponse],
      ["p", parseSASLResponse],
      ["R", parseAuthentication],
      ["S", parseParameterStatus],
      ["K", parseBackendKeyData],
      ["v", parseNegotiateProtocolVersion],
      ["Z", parseReadyForQuery],
      ["E", parseErrorResponse],
      ["N", parseNoticeResponse],
      ["C", parseCommandComplete],
      ["T", parseRowDescription],
      ["D", parseDataRow],
    ];
    const startupCode = PROTOCOL_VERSION_3;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(parsers.length - 1), (bytes, index) => {
        const [code, parse] = parsers[index] as [string, (f: Frame) => unknown];
        const f = code.length === 1 ? raw(code, Buffer.from(bytes)) : raw(startupCode, Buffer.from(bytes));
        try {
          parse(f);
        } catch (error) {
          assert.ok(error instanceof ProtocolError, `${parse.name}: ${String(error)}`);
        }
      }),
      { numRuns: 5000 },
    );
    // And on a cancel request of random length.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          parseCancelRequest(raw(CANCEL_REQUEST_CODE, Buffer.from(bytes)));
        } catch (error) {
          assert.ok(error instanceof ProtocolError);
        }
      }),
    );
  });
});

describe("Reader", () => {
  it("reads each width and stops at its end, not the buffer's", () => {
    const buf = hex("ff fffe 80000000 ffffffff 61 62 00 6364 65");
    const r = new Reader(buf, "test", 0, buf.length - 1);
    assert.equal(r.int8(), 255);
    assert.equal(r.int16(), -2);
    assert.equal(r.uint32(), 0x80000000);
    assert.equal(r.int32(), -1);
    assert.equal(r.cstring(), "ab");
    assert.equal(r.string(1), "c");
    assert.deepEqual(r.bytes(1), Buffer.from("d"));
    assert.equal(r.remaining, 0);
    r.end();
    throwsProtocol(() => r.int8(), "MALFORMED_MESSAGE", /test: truncated/);
    throwsProtocol(() => new Reader(Buffer.from("ab"), "t", 0, 1).cstring(), "MALFORMED_MESSAGE");
    throwsProtocol(() => new Reader(Buffer.from("ab")).bytes(-1), "MALFORMED_MESSAGE");
  });
});

describe("Writer", () => {
  it("grows past its initial size and keeps every message it returned intact", () => {
    const w = new Writer(64);
    const messages: [Buffer, string][] = [];
    for (let i = 0; i < 400; i++) {
      const text = `message ${i} ${"x".repeat((i * 37) % 300)}`;
      messages.push([w.cstring(text).finish(FrontendMessage.Query), text]);
    }
    const big = "y".repeat(200_000);
    messages.push([w.cstring(big).finish(FrontendMessage.Query), big]);
    messages.push([w.cstring("after").finish(FrontendMessage.Query), "after"]);
    for (const [message, text] of messages) assert.equal(parseQuery(frame(message)), text);
  });

  it("discards the message in progress when a write is rejected, staying usable", () => {
    const w = new Writer();
    w.cstring("partial");
    assert.throws(() => w.cstring("a\0b"), TypeError);
    assert.equal(w.length, 0);
    w.cstring("kept");
    assert.throws(() => w.int16(70_000), RangeError);
    assert.throws(() => w.int32(2 ** 32), RangeError);
    assert.throws(() => w.int8(1.5), RangeError);
    assert.equal(parseQuery(frame(w.cstring("ok").finish(FrontendMessage.Query))), "ok");
    // The builders share a writer: a rejected build must not leak into the next message.
    assert.throws(() => buildQuery("x\0y"), TypeError);
    assert.throws(() => buildStartupMessage({ user: "u", "": "x" }), TypeError);
    assert.throws(() => buildErrorResponse({ severity: "ERROR", code: "123", message: "m" }), RangeError);
    assert.equal(parseQuery(frame(buildQuery("clean"))), "clean");
  });

  it("finishStartup() writes no type byte", () => {
    assert.deepEqual(new Writer().int32(1).finishStartup(), hex("00000008 00000001"));
  });
});

describe("codes", () => {
  it("names message types for logs", () => {
    assert.equal(backendMessageName(0x5a), "ReadyForQuery");
    assert.equal(backendMessageName(0x45), "ErrorResponse");
    assert.equal(frontendMessageName(0x45), "Execute");
    assert.equal(frontendMessageName(0x70), "Password");
    assert.equal(frontendMessageName(0x78), "Unknown 'x' (0x78)");
    assert.equal(backendMessageName(0), "Unknown (0x00)");
    assert.equal(errorFieldName(0x43), "code");
    assert.equal(errorFieldName(0x7a), undefined);
  });
});
