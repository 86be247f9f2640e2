import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  AUTHENTICATION_OK,
  BackendMessage,
  buildBackendKeyData,
  buildBind,
  buildCancelRequest,
  buildClose,
  buildCommandComplete,
  buildDataRow,
  buildDescribe,
  buildErrorResponse,
  buildExecute,
  buildParameterStatus,
  buildParse,
  buildQuery,
  buildReadyForQuery,
  buildRowDescription,
  buildStartupMessage,
  CANCEL_REQUEST_CODE,
  FLUSH,
  type Frame,
  FrameScanner,
  GSSENC_REQUEST,
  GSSENC_REQUEST_CODE,
  MessageFramer,
  PROTOCOL_VERSION_3,
  ProtocolError,
  type ProtocolErrorCode,
  SSL_REQUEST,
  SSL_REQUEST_CODE,
  SYNC,
  TERMINATE,
  TransactionStatus,
} from "../src/index.ts";

// A client stream: a startup packet, then regular messages of several sizes (BIG_CLIENT adds one large
// enough that its spanning body grows while collected).
const CLIENT_MESSAGES = [
  buildStartupMessage({ user: "app", database: "db", application_name: "framer-test" }),
  buildQuery("select 1"),
  buildParse("s1", "select $1::int4, $2::text", [23, 25]),
  buildBind({ statement: "s1", params: ["42", null] }),
  buildDescribe("P"),
  buildExecute("", 0),
  SYNC,
  buildQuery(`select '${"x".repeat(300)}'`),
  FLUSH,
  buildClose("S", "s1"),
  TERMINATE,
];
const CLIENT = Buffer.concat(CLIENT_MESSAGES);
const BIG_CLIENT = Buffer.concat([
  ...CLIENT_MESSAGES.slice(0, -1),
  buildQuery("y".repeat(150_000)),
  TERMINATE,
]);

const I = TransactionStatus.Idle;
const T = TransactionStatus.InTransaction;
const E = TransactionStatus.Failed;
const SERVER = Buffer.concat([
  AUTHENTICATION_OK,
  buildParameterStatus("server_version", "17.0"),
  buildBackendKeyData(4242, Buffer.from([1, 2, 3, 4])),
  buildReadyForQuery(I),
  buildRowDescription(["a", "b"]),
  buildDataRow(["1", null]),
  buildDataRow(["2", "two"]),
  buildCommandComplete("SELECT 2"),
  buildReadyForQuery(T),
  buildErrorResponse({ severity: "ERROR", code: "42P01", message: 'relation "nope" does not exist' }),
  buildReadyForQuery(E),
  buildDataRow(["z".repeat(70_000)]),
  buildCommandComplete("SELECT 1"),
  buildReadyForQuery(I),
]);

interface Seen {
  code: number;
  length: number;
  payload: string;
}

const show = (f: Frame): Seen => ({ code: f.code, length: f.length, payload: f.payload.toString("hex") });

/** Frames `chunks` with a fresh framer; payloads are read only at the end, so they must still be intact. */
function frameAll(chunks: readonly Buffer[], startup = true): Seen[] {
  const framer = new MessageFramer({ startup });
  const frames: Frame[] = [];
  for (const chunk of chunks) framer.push(chunk, (f) => frames.push(f));
  assert.equal(framer.bufferedBytes, 0);
  return frames.map(show);
}

/** Cuts `stream` at the given offsets, each piece a separate buffer as a socket would deliver it. */
function cut(stream: Buffer, offsets: readonly number[]): Buffer[] {
  const points = [0, ...[...new Set(offsets)].sort((a, b) => a - b), stream.length];
  const chunks: Buffer[] = [];
  for (let i = 1; i < points.length; i++) chunks.push(Buffer.from(stream.subarray(points[i - 1], points[i])));
  return chunks;
}

/** Where each message of a stream ends, with its code, per the reference framing of the whole stream. */
function boundaries(stream: Buffer, startup: boolean): { end: number; code: number; status: number }[] {
  const out: { end: number; code: number; status: number }[] = [];
  let pos = 0;
  new MessageFramer({ startup }).push(stream, (f) => {
    pos += f.length + (startup && out.length === 0 ? 0 : 1);
    out.push({
      end: pos,
      code: f.code,
      status: f.code === BackendMessage.ReadyForQuery ? (f.payload[0] as number) : 0,
    });
  });
  assert.equal(pos, stream.length);
  return out;
}

function throwsProtocol(fn: () => unknown, code: ProtocolErrorCode, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

const header = (code: string, length: number): Buffer => {
  const b = Buffer.alloc(5);
  b.write(code, 0, "latin1");
  b.writeInt32BE(length, 1);
  return b;
};

describe("MessageFramer", () => {
  const expected = frameAll([CLIENT]);

  it("frames the reference stream", () => {
    assert.equal(expected.length, CLIENT_MESSAGES.length);
    assert.deepEqual(
      expected.map((f) => f.code),
      [PROTOCOL_VERSION_3, ..."QPBDESQHCX"].map((c) => (typeof c === "number" ? c : c.charCodeAt(0))),
    );
  });

  it("delivers the same messages for a split at every byte boundary", () => {
    const ends = boundaries(CLIENT, true).map((b) => b.end);
    for (let i = 0; i <= CLIENT.length; i++) {
      const [a, b] = cut(CLIENT, [i]) as [Buffer, Buffer]; // an empty chunk at either end is a case too
      const framer = new MessageFramer({ startup: true });
      const frames: Frame[] = [];
      framer.push(a, (f) => frames.push(f));
      const complete = ends.filter((end) => end <= i);
      assert.equal(frames.length, complete.length, `split at ${i}`);
      assert.equal(framer.bufferedBytes, i - (complete.at(-1) ?? 0), `bufferedBytes after split at ${i}`);
      framer.push(b, (f) => frames.push(f));
      assert.deepEqual(frames.map(show), expected, `split at ${i}`);
    }
  });

  it("delivers the same messages fed one byte at a time", () => {
    const bytes = Array.from({ length: CLIENT.length }, (_, i) => i);
    assert.deepEqual(frameAll(cut(CLIENT, bytes)), expected);
  });

  it("delivers the same messages for random chunkings (fast-check)", () => {
    const big = frameAll([BIG_CLIENT]);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: BIG_CLIENT.length - 1 }), { maxLength: 40 }),
        (offsets) => {
          assert.deepEqual(frameAll(cut(BIG_CLIENT, offsets)), big);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("hands out views into the chunk for whole messages and stable copies for spanning ones", () => {
    const framer = new MessageFramer();
    const q1 = buildQuery("one");
    const q2 = buildQuery("two, spanning");
    // Buffer.alloc never uses Node's shared pool, so each chunk has its own ArrayBuffer.
    const own = (b: Buffer) => {
      const c = Buffer.alloc(b.length);
      b.copy(c);
      return c;
    };
    const chunk1 = own(Buffer.concat([q1, q2.subarray(0, 9)]));
    const frames: Frame[] = [];
    framer.push(chunk1, (f) => frames.push(f));
    assert.ok(frames[0]?.payload.buffer === chunk1.buffer, "a whole message is a view into its chunk");
    const chunk2 = own(Buffer.concat([q2.subarray(9), buildQuery("three")]));
    framer.push(chunk2, (f) => frames.push(f));
    assert.ok(frames[1]?.payload.buffer !== chunk1.buffer, "a spanning message is a copy");
    assert.ok(frames[1]?.payload.buffer !== chunk2.buffer, "a spanning message is a copy");
    assert.ok(frames[2]?.payload.buffer === chunk2.buffer, "a whole message is a view into its chunk");
    // Later traffic through the same framer must not disturb a payload already delivered.
    for (let i = 0; i < 50; i++) {
      const next = buildQuery(`noise ${i} ${"n".repeat(i * 7)}`);
      framer.push(next.subarray(0, 3), () => {});
      framer.push(next.subarray(3), () => {});
    }
    assert.deepEqual(
      frames.map((f) => f.payload.toString()),
      ["one\0", "two, spanning\0", "three\0"],
    );
  });

  describe("startup mode", () => {
    it("stays in startup mode after SSLRequest and GSSENCRequest, switches after StartupMessage", () => {
      const framer = new MessageFramer({ startup: true });
      const codes: number[] = [];
      const modes: string[] = [];
      const push = (b: Buffer) =>
        framer.push(b, (f) => {
          codes.push(f.code);
          modes.push(framer.mode);
        });
      push(GSSENC_REQUEST);
      push(SSL_REQUEST);
      push(Buffer.concat([buildStartupMessage({ user: "u" }), SYNC]));
      assert.deepEqual(codes, [GSSENC_REQUEST_CODE, SSL_REQUEST_CODE, PROTOCOL_VERSION_3, 0x53]);
      assert.deepEqual(modes, ["startup", "startup", "regular", "regular"]);
    });

    it("frames a CancelRequest", () => {
      const frames: Frame[] = [];
      new MessageFramer({ startup: true }).push(buildCancelRequest(7, Buffer.from("abcd")), (f) =>
        frames.push(f),
      );
      assert.deepEqual(frames.map(show), [
        { code: CANCEL_REQUEST_CODE, length: 16, payload: "00000007" + "61626364" },
      ]);
    });

    it("rejects bytes after an SSLRequest in the same chunk (they would bypass TLS)", () => {
      const framer = new MessageFramer({ startup: true });
      throwsProtocol(
        () => framer.push(Buffer.concat([SSL_REQUEST, buildStartupMessage({ user: "u" })]), () => {}),
        "UNEXPECTED_MESSAGE",
        /unencrypted data after SSL request/,
      );
      throwsProtocol(
        () => new MessageFramer({ startup: true }).push(Buffer.concat([GSSENC_REQUEST, SYNC]), () => {}),
        "UNEXPECTED_MESSAGE",
      );
    });

    it("expectStartup() switches back between messages, and refuses with a message half received", () => {
      const framer = new MessageFramer();
      const codes: number[] = [];
      framer.push(SYNC, (f) => codes.push(f.code));
      framer.expectStartup();
      assert.equal(framer.mode, "startup");
      framer.push(buildStartupMessage({ user: "u" }), (f) => codes.push(f.code));
      assert.deepEqual(codes, [0x53, PROTOCOL_VERSION_3]);
      framer.push(SYNC.subarray(0, 2), () => {});
      throwsProtocol(() => framer.expectStartup(), "UNEXPECTED_MESSAGE");
    });
  });

  describe("limits, from the header alone", () => {
    it("rejects an oversized length as soon as the header is in", () => {
      const framer = new MessageFramer({ maxMessageLength: 1000 });
      framer.push(header("Q", 1000).subarray(0, 5), () => {}); // exactly the limit is fine
      assert.equal(framer.bufferedBytes, 5);
      const other = new MessageFramer({ maxMessageLength: 1000 });
      throwsProtocol(() => other.push(header("Q", 1001), () => {}), "MESSAGE_TOO_LARGE", /'Q' of 1001 bytes/);
    });

    it("rejects an oversized length when the header itself is split", () => {
      const framer = new MessageFramer({ maxMessageLength: 1000 });
      const h = header("Q", 5000);
      framer.push(h.subarray(0, 3), () => {});
      assert.equal(framer.bufferedBytes, 3);
      throwsProtocol(() => framer.push(h.subarray(3), () => {}), "MESSAGE_TOO_LARGE");
    });

    it("rejects lengths below 4, including negative ones", () => {
      throwsProtocol(() => new MessageFramer().push(header("Q", 3), () => {}), "MALFORMED_MESSAGE");
      throwsProtocol(() => new MessageFramer().push(header("Q", -1), () => {}), "MALFORMED_MESSAGE");
      throwsProtocol(() => new MessageFramer().push(header("Q", -2147483648), () => {}), "MALFORMED_MESSAGE");
    });

    it("bounds startup packets: at least 8 bytes, at most maxStartupLength (default 10000)", () => {
      const startup = (length: number) => Buffer.from([...header("\0", length).subarray(1), 0, 3, 0, 0]);
      throwsProtocol(
        () => new MessageFramer({ startup: true }).push(startup(7), () => {}),
        "MALFORMED_MESSAGE",
        /startup packet/,
      );
      throwsProtocol(
        () => new MessageFramer({ startup: true }).push(startup(10_001), () => {}),
        "MESSAGE_TOO_LARGE",
      );
      const small = new MessageFramer({ startup: true, maxStartupLength: 100 });
      throwsProtocol(() => small.push(startup(101), () => {}), "MESSAGE_TOO_LARGE");
    });

    it("does not allocate for a large declared length, only for bytes received", () => {
      const framer = new MessageFramer(); // default limit: 1 GiB - 1
      const before = process.memoryUsage().arrayBuffers;
      framer.push(Buffer.concat([header("d", 0x3fffffff), Buffer.alloc(100)]), () => {});
      assert.equal(framer.bufferedBytes, 105);
      assert.ok(
        process.memoryUsage().arrayBuffers - before < 1 << 20,
        "allocated far less than the declared length",
      );
    });
  });

  describe("bufferedBytes", () => {
    it("counts the part of the message received so far, and drops to 0 when it completes", () => {
      const framer = new MessageFramer();
      const q = buildQuery("z".repeat(100_000));
      const seen: number[] = [];
      for (let at = 0; at < q.length; at += 10_000) {
        framer.push(q.subarray(at, at + 10_000), () => seen.push(framer.bufferedBytes));
        if (at + 10_000 < q.length) assert.equal(framer.bufferedBytes, at + 10_000);
      }
      assert.equal(framer.bufferedBytes, 0);
      assert.equal(seen.length, 1);
    });
  });

  describe("fail-stop", () => {
    it("keeps rethrowing a framing error", () => {
      const framer = new MessageFramer({ maxMessageLength: 10 });
      throwsProtocol(() => framer.push(header("Q", 11), () => {}), "MESSAGE_TOO_LARGE");
      throwsProtocol(() => framer.push(SYNC, () => {}), "MESSAGE_TOO_LARGE");
    });

    it("keeps rethrowing an error thrown by the handler (the rest of that chunk is lost)", () => {
      const framer = new MessageFramer();
      const boom = new Error("handler failed");
      assert.throws(
        () =>
          framer.push(Buffer.concat([SYNC, SYNC]), () => {
            throw boom;
          }),
        boom,
      );
      assert.throws(() => framer.push(SYNC, () => {}), boom);
    });
  });
});

describe("FrameScanner", () => {
  const marks = boundaries(SERVER, false);
  const CAPTURE = [BackendMessage.ErrorResponse, BackendMessage.ParameterStatus];
  const expectedCaptured = frameAll([SERVER], false).filter((f) => CAPTURE.includes(f.code as never));

  /** Scans `chunks`; after each chunk checks the scanner's view against the reference boundaries. */
  function scanAll(chunks: readonly Buffer[]): Seen[] {
    const scanner = new FrameScanner({ capture: CAPTURE });
    const captured: Frame[] = [];
    let offset = 0;
    for (const chunk of chunks) {
      scanner.scan(chunk, (f) => captured.push(f));
      offset += chunk.length;
      const done = marks.filter((m) => m.end <= offset);
      const ready = done.filter((m) => m.code === BackendMessage.ReadyForQuery);
      const at = `after ${offset} bytes`;
      assert.equal(scanner.messages, done.length, at);
      assert.equal(scanner.readyCount, ready.length, at);
      assert.equal(scanner.readyStatus, ready.at(-1)?.status ?? 0, at);
      assert.equal(scanner.lastCode, done.at(-1)?.code ?? 0, at);
      assert.equal(scanner.atBoundary, (done.at(-1)?.end ?? 0) === offset, at);
      assert.equal(scanner.endsWithReadyForQuery, ready.length > 0 && ready.at(-1)?.end === offset, at);
    }
    assert.equal(offset, SERVER.length);
    return captured.map(show);
  }

  it("reports ReadyForQuery and its status at the end of the stream", () => {
    assert.deepEqual(scanAll([SERVER]), expectedCaptured);
    assert.equal(expectedCaptured.length, 2);
  });

  it("tracks boundaries, counts and captures for a split at every byte boundary", () => {
    for (let i = 0; i <= SERVER.length; i += i < 300 || i > SERVER.length - 300 ? 1 : 97) {
      assert.deepEqual(scanAll(cut(SERVER, [i])), expectedCaptured, `split at ${i}`);
    }
  });

  it("tracks the same fed one byte at a time around every ReadyForQuery", () => {
    const offsets = marks.flatMap((m) =>
      m.code === BackendMessage.ReadyForQuery ? [m.end - 7, m.end - 6, m.end - 5, m.end - 1] : [],
    );
    const small = SERVER.subarray(0, marks[9]?.end);
    assert.ok(small.length < 400);
    assert.deepEqual(
      scanAll(cut(SERVER, [...offsets, ...Array.from({ length: small.length - 1 }, (_, i) => i + 1)])),
      expectedCaptured,
    );
  });

  it("tracks the same for random chunkings (fast-check)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: SERVER.length - 1 }), { maxLength: 60 }), (offsets) => {
        assert.deepEqual(scanAll(cut(SERVER, offsets)), expectedCaptured);
      }),
      { numRuns: 300 },
    );
  });

  it("reads a ReadyForQuery status byte that arrives in the next chunk", () => {
    const scanner = new FrameScanner();
    const z = buildReadyForQuery(T);
    scanner.scan(z.subarray(0, 5));
    assert.equal(scanner.readyCount, 0);
    assert.equal(scanner.endsWithReadyForQuery, false);
    scanner.scan(z.subarray(5));
    assert.equal(scanner.readyStatus, T);
    assert.equal(scanner.endsWithReadyForQuery, true);
  });

  it("buffers nothing while skipping the body of an uncaptured message", () => {
    const scanner = new FrameScanner({ capture: [BackendMessage.ErrorResponse] });
    const row = buildDataRow(["r".repeat(1_000_000)]);
    for (let at = 0; at < row.length; at += 65_536) {
      scanner.scan(row.subarray(at, at + 65_536));
      assert.equal(scanner.bufferedBytes, 0);
    }
    assert.equal(scanner.messages, 1);
    assert.equal(scanner.atBoundary, true);
  });

  it("rejects bad lengths from the header, including a ReadyForQuery that is not 5 bytes", () => {
    throwsProtocol(
      () => new FrameScanner({ maxMessageLength: 100 }).scan(header("D", 101)),
      "MESSAGE_TOO_LARGE",
    );
    throwsProtocol(() => new FrameScanner().scan(header("D", 2)), "MALFORMED_MESSAGE");
    throwsProtocol(() => new FrameScanner().scan(header("Z", 6)), "MALFORMED_MESSAGE");
    throwsProtocol(() => new FrameScanner().scan(Buffer.from("Z\0\0\0\x05X", "latin1")), "MALFORMED_MESSAGE");
    const split = new FrameScanner({ maxMessageLength: 100 });
    split.scan(header("D", 101).subarray(0, 2));
    throwsProtocol(() => split.scan(header("D", 101).subarray(2)), "MESSAGE_TOO_LARGE");
    throwsProtocol(() => split.scan(SYNC), "MESSAGE_TOO_LARGE");
  });
});
