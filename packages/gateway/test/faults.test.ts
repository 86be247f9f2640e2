import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalPostgres, randomPassword } from "@pgbind/local-postgres";
import pg from "pg";
import { makeTempDir } from "../../../test-support/tmp.ts";
import type { Gateway } from "../src/index.ts";
import { startGateway, testBinding } from "./support.ts";

const PASSWORD = "fault-pw";

describe("origin faults", () => {
  let dir: { path: string; remove: () => Promise<void> };
  let server: LocalPostgres;
  let gateway: Gateway;
  let port: number;
  const originPassword = randomPassword();

  before(async () => {
    dir = await makeTempDir("faults");
    server = await LocalPostgres.start({
      dataDir: path.join(dir.path, "data"),
      password: originPassword,
      durable: false,
    });
    const originPort = server.port;
    ({ gateway, port } = await startGateway([
      testBinding(
        { host: "127.0.0.1", port: originPort, user: "postgres", password: originPassword },
        { password: PASSWORD, poolSize: 3, timeouts: { connectMs: 15_000 } },
      ),
    ]));
  });

  after(async () => {
    await gateway?.close(200);
    await server?.stop();
    await dir?.remove();
  });

  function client() {
    const c = new pg.Client({ host: "127.0.0.1", port, user: "app", password: PASSWORD, database: "db" });
    c.on("error", () => {});
    return c;
  }

  it("fails in-flight work with 08006 when the origin restarts, serves new clients once it is back, even if it takes a while", async () => {
    const before = client();
    await before.connect();
    await before.query("select 1");
    // Observed from the start: it fails while the test is still awaiting the origin's shutdown.
    const inFlight = assert.rejects(
      before.query("select pg_sleep(5)"),
      (e: { code?: string; message: string }) => {
        // PostgreSQL's own shutdown error (57P01) or ours when the link drops (08006): either is clear.
        assert.ok(e.code === "57P01" || e.code === "08006", `${e.code}: ${e.message}`);
        return true;
      },
    );
    await new Promise((r) => setTimeout(r, 200));
    const originPort = server.port;
    await server.stop();
    await inFlight;
    // The origin comes back 2 s later; a client connecting meanwhile waits instead of failing.
    const restarted = new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        const options = {
          dataDir: path.join(dir.path, "data"),
          password: originPassword,
          port: originPort,
          durable: false,
        };
        LocalPostgres.start(options).then((s) => {
          server = s;
          resolve();
        }, reject);
      }, 2_000);
    });
    const after = client();
    await after.connect();
    assert.deepEqual((await after.query("select 2 as n")).rows, [{ n: 2 }]);
    // The pool healed: several transactions in parallel succeed.
    const more = await Promise.all(
      [0, 1, 2, 3].map(async (i) => (await after.query("select $1::int as i", [i])).rows[0].i),
    );
    assert.deepEqual(more, [0, 1, 2, 3]);
    await after.end();
    await restarted;
  });
});
