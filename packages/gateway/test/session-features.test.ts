import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inspectStatement, mayNeedInspection } from "../src/session-features.ts";

const bytes = (text: string) => Buffer.from(text);

describe("mayNeedInspection (the byte-level pre-check)", () => {
  it("passes the common statement without decoding it", () => {
    assert.equal(mayNeedInspection(bytes("SELECT abalance FROM pgbench_accounts WHERE aid = $1")), false);
    assert.equal(mayNeedInspection(bytes("UPDATE t SET")), true, "'set' anywhere, even as an UPDATE's");
    assert.equal(mayNeedInspection(bytes("")), false);
  });

  it("finds every keyword in any letter case, anywhere, including at the very end", () => {
    for (const word of ["set", "listen", "prepare", "advisory", "hold", "deallocate", "discard"]) {
      for (const text of [
        word,
        word.toUpperCase(),
        `select 1; ${word}`,
        `x${word[0]?.toUpperCase()}${word.slice(1)}`,
      ]) {
        assert.equal(mayNeedInspection(bytes(text)), true, text);
      }
      // A keyword cut short by the end of the payload is not there.
      assert.equal(mayNeedInspection(bytes(`select ${word.slice(0, -1)}`)), false, word);
    }
  });

  it("never answers false for a statement the full inspection would act on", () => {
    for (const text of [
      "SET search_path = app",
      "LISTEN jobs",
      "PREPARE p AS SELECT 1",
      "SELECT pg_advisory_lock(1)",
      "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
      "DEALLOCATE ALL",
      "DISCARD ALL",
    ]) {
      const facts = inspectStatement(text);
      assert.ok(facts.changesState || facts.dropsStatements || facts.feature, text);
      assert.equal(mayNeedInspection(bytes(text)), true, text);
    }
  });
});
