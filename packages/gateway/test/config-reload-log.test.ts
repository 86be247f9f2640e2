import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createScramVerifier } from "@pgbind/protocol";
import pg from "pg";
import { diffBindings } from "../src/config-diff.ts";
import { type ConfigSource, Gateway, type GatewayConfig } from "../src/index.ts";
import { type TestOrigin, testBinding } from "./support.ts";

// Distinctive values, so a match can only be a leak. No client logs in to a binding, so nothing listens
// at the origin.
const origin: TestOrigin = { host: "127.0.0.1", port: 1, user: "owner", password: "origin-Secret-one" };
const ROTATED_ORIGIN_PASSWORD = "origin-Secret-two";
const ADMIN_PASSWORD = "admin-Secret-pw";

describe("config_applied says what a reload changed", () => {
  const orders = testBinding(origin, { password: "orders-Secret-pw", database: "orders" });
  const billing = testBinding(origin, { password: "billing-Secret-pw", database: "billing" });
  const legacy = testBinding(origin, { password: "legacy-Secret-pw", database: "legacy" });
  const reports = testBinding(origin, { password: "reports-Secret-pw", database: "reports" });
  const rotatedVerifier = createScramVerifier("billing-Secret-next");
  const first: GatewayConfig = { bindings: [orders, billing, legacy] };
  const second: GatewayConfig = {
    bindings: [
      {
        ...orders,
        poolSize: 5,
        origin: { ...orders.origin, host: "localhost", password: ROTATED_ORIGIN_PASSWORD },
      },
      { ...billing, credentials: [{ user: "app", scramVerifier: rotatedVerifier }] },
      reports,
    ],
  };

  it("after an admin RELOAD that adds, removes and changes bindings, by id, with no secret in the log", async () => {
    let current = first;
    const source: ConfigSource = { description: "test", load: async () => current, watch: () => () => {} };
    const logged: { event: string; fields: Record<string, unknown> }[] = [];
    const gateway = new Gateway({
      source,
      port: 0,
      log: (event, fields) => logged.push({ event, fields }),
      adminCredentials: [{ user: "admin", scramVerifier: createScramVerifier(ADMIN_PASSWORD) }],
    });
    const { port } = await gateway.start();
    try {
      const applied = () => logged.filter((l) => l.event === "config_applied").map((l) => l.fields);
      assert.deepEqual(applied()[0], {
        bindings: ["orders", "billing", "legacy"],
        added: ["orders", "billing", "legacy"],
        removed: [],
        changed: [],
        loginTimeoutMs: 60_000,
      });

      current = second;
      const admin = new pg.Client({
        host: "127.0.0.1",
        port,
        user: "admin",
        password: ADMIN_PASSWORD,
        database: "pgbind",
      });
      await admin.connect();
      try {
        await admin.query("RELOAD");
      } finally {
        await admin.end();
      }
      assert.equal(applied().length, 2);
      assert.deepEqual(applied()[1], {
        bindings: ["orders", "billing", "reports"],
        added: ["reports"],
        removed: ["legacy"],
        changed: [
          { id: "orders", fields: ["origin.host", "origin.password", "poolSize"] },
          { id: "billing", fields: ["credentials"] },
        ],
        loginTimeoutMs: 60_000,
      });

      const text = JSON.stringify(logged);
      for (const secret of [
        origin.password,
        ROTATED_ORIGIN_PASSWORD,
        ADMIN_PASSWORD,
        rotatedVerifier,
        ...first.bindings.flatMap((b) => b.credentials.map((c) => c.scramVerifier)),
      ]) {
        assert.ok(!text.includes(secret), `a secret leaked into the log: ${text}`);
      }
      assert.doesNotMatch(text, /Secret|SCRAM-SHA-256\$/);
    } finally {
      await gateway.close(0);
    }
  });

  it("diffBindings reports a moved database and a changed timeout by field path, and nothing for equal configs", () => {
    assert.deepEqual(diffBindings(first.bindings, first.bindings), { added: [], removed: [], changed: [] });
    const moved = {
      ...orders,
      database: "orders_v2",
      timeouts: { ...orders.timeouts, queryWaitMs: 1 },
    };
    assert.deepEqual(diffBindings([orders], [moved]), {
      added: [],
      removed: [],
      changed: [{ id: "orders", fields: ["database", "timeouts.queryWaitMs"] }],
    });
  });
});
