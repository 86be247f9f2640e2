import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BackendMessage,
  buildCommandComplete,
  buildDataRow,
  buildParameterStatus,
  buildReadyForQuery,
  CLOSE_COMPLETE,
  PARSE_COMPLETE,
  TransactionStatus,
} from "@pgbind/protocol";
import fc from "fast-check";
import { ResponseWalker } from "../src/response-walker.ts";

const stream = Buffer.concat([
  PARSE_COMPLETE,
  CLOSE_COMPLETE,
  buildDataRow(["a".repeat(50), null, "x"]),
  PARSE_COMPLETE,
  buildCommandComplete("SELECT 1"),
  buildReadyForQuery(TransactionStatus.InTransaction),
  CLOSE_COMPLETE,
  buildReadyForQuery(TransactionStatus.Idle),
]);
// What the client must see when every CloseComplete and the second ParseComplete are hidden.
const expected = Buffer.concat([
  PARSE_COMPLETE,
  buildDataRow(["a".repeat(50), null, "x"]),
  buildCommandComplete("SELECT 1"),
  buildReadyForQuery(TransactionStatus.InTransaction),
  buildReadyForQuery(TransactionStatus.Idle),
]);

function run(chunks: Buffer[]) {
  const walker = new ResponseWalker();
  let parses = 0;
  const keep = (code: number) => {
    if (code === BackendMessage.CloseComplete) return false;
    if (code === BackendMessage.ParseComplete) return ++parses !== 2;
    return true;
  };
  const out: Buffer[] = [];
  const statuses: number[] = [];
  for (const chunk of chunks) {
    out.push(...walker.walk(chunk, keep));
    if (walker.endsWithReady) statuses.push(walker.readyStatus);
  }
  return { out: Buffer.concat(out), walker, statuses };
}

describe("ResponseWalker", () => {
  it("passes a chunk through untouched (same buffer) when nothing is dropped", () => {
    const chunk = Buffer.concat([
      buildCommandComplete("SELECT 1"),
      buildReadyForQuery(TransactionStatus.Idle),
    ]);
    const parts = new ResponseWalker().walk(chunk, () => true);
    assert.equal(parts.length, 1);
    assert.equal(parts[0], chunk);
  });

  it("drops hidden messages whatever the split, byte by byte and at every boundary", () => {
    assert.deepEqual(run([stream]).out, expected);
    const byByte = run([...stream].map((b) => Buffer.from([b])));
    assert.deepEqual(byByte.out, expected);
    assert.equal(byByte.walker.readyCount, 2);
    assert.equal(byByte.walker.readyStatus, TransactionStatus.Idle);
    for (let cut = 1; cut < stream.length; cut++) {
      const r = run([stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(r.out, expected, `split at ${cut}`);
      assert.deepEqual(r.statuses.at(-1), TransactionStatus.Idle);
    }
  });

  it("agrees with itself on random chunkings", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 12 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let from = 0;
        for (const p of points) {
          chunks.push(stream.subarray(from, p));
          from = p;
        }
        chunks.push(stream.subarray(from));
        const r = run(chunks.filter((c) => c.length > 0));
        assert.deepEqual(r.out, expected);
        assert.equal(r.walker.atBoundary, true);
      }),
      { numRuns: 300 },
    );
  });

  it("hands over each kept ParameterStatus body whole, at every split, and none of the hidden ones", () => {
    const reply = Buffer.concat([
      buildParameterStatus("TimeZone", "Asia/Tokyo"),
      CLOSE_COMPLETE,
      buildCommandComplete("SET"),
      buildParameterStatus("DateStyle", "SQL, DMY"),
      buildReadyForQuery(TransactionStatus.Idle),
    ]);
    const walk = (chunks: Buffer[], keepStatus: boolean) => {
      const walker = new ResponseWalker();
      const bodies: string[] = [];
      const keep = (code: number) =>
        code !== BackendMessage.CloseComplete && (keepStatus || code !== BackendMessage.ParameterStatus);
      for (const chunk of chunks) walker.walk(chunk, keep, (body) => bodies.push(body.toString("latin1")));
      return bodies;
    };
    const want = ["TimeZone\0Asia/Tokyo\0", "DateStyle\0SQL, DMY\0"];
    assert.deepEqual(walk([reply], true), want);
    assert.deepEqual(
      walk(
        [...reply].map((b) => Buffer.from([b])),
        true,
      ),
      want,
    );
    for (let cut = 1; cut < reply.length; cut++) {
      assert.deepEqual(walk([reply.subarray(0, cut), reply.subarray(cut)], true), want, `split at ${cut}`);
      assert.deepEqual(walk([reply.subarray(0, cut), reply.subarray(cut)], false), [], `split at ${cut}`);
    }
  });
});
