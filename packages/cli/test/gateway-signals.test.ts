import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createScramVerifier } from "@pgbind/protocol";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { canLogIn, gatewayClient, startGateway } from "./gateway-support.ts";

describe("pgbind gateway signals", () => {
  let origin: TestPostgres;
  let dir: { path: string; remove: () => Promise<void> };
  const verifiers = new Map<string, string>();

  /** A config for database `orders` with one credential per user (password `<user>-pw`). */
  const writeConfig = (file: string, users: string[]) =>
    writeFile(
      path.join(dir.path, file),
      JSON.stringify({
        bindings: [
          {
            id: "orders",
            database: "orders",
            credentials: users.map((user) => {
              if (!verifiers.has(user)) verifiers.set(user, createScramVerifier(`${user}-pw`));
              return { user, scramVerifier: verifiers.get(user) };
            }),
            origin: {
              host: origin.host,
              port: origin.port,
              database: "postgres",
              user: origin.user,
              passwordEnv: "ORDERS_DB_PASSWORD",
              sslmode: "disable",
            },
            poolSize: 2,
          },
        ],
      }),
    );
  const env = () => ({ ORDERS_DB_PASSWORD: origin.password });
  const login = (port: number, user: string) =>
    canLogIn(port, { user, password: `${user}-pw`, database: "orders" });

  before(async () => {
    [origin, dir] = await Promise.all([startTestPostgres(), makeTempDir("gw-signals")]);
  });
  after(async () => {
    await origin?.stop();
    await dir?.remove();
  });

  it("SIGHUP reloads the config file (watching off): a new credential logs in, a connected client carries on", async () => {
    await writeConfig("hup.json", ["app"]);
    const gw = startGateway(["--config", "hup.json", "--listen", "127.0.0.1:0", "--no-watch"], {
      cwd: dir.path,
      env: env(),
    });
    try {
      const port = await gw.listening;
      assert.equal((await gw.waitForLog((l) => l.event === "listening")).watch, false);
      const app = gatewayClient(port, { user: "app", password: "app-pw", database: "orders" });
      await app.connect();
      // A transaction open across the reload: it finishes on the pool it started on.
      await app.query("begin");
      await app.query("create temp table t (n int) on commit drop");
      await app.query("insert into t values (1)");

      await writeConfig("hup.json", ["app", "batch"]);
      // Longer than the file watcher's debounce: with --no-watch, the edit alone changes nothing.
      await sleep(400);
      await assert.rejects(login(port, "batch"), { code: "28P01" });
      assert.equal(gw.logs().filter((l) => l.event === "config_reloaded").length, 0);

      gw.child.kill("SIGHUP");
      const reloaded = await gw.waitForLog((l) => l.event === "config_reloaded");
      assert.equal(reloaded.reason, "SIGHUP");
      assert.equal(reloaded.level, "info");
      assert.equal(reloaded.source, path.join(dir.path, "hup.json"));
      await login(port, "batch");

      await app.query("insert into t values (2)");
      assert.deepEqual((await app.query("select sum(n)::int as s from t")).rows, [{ s: 3 }]);
      await app.query("commit");
      assert.deepEqual((await app.query("select 7 as n")).rows, [{ n: 7 }], "next transaction, new pool");
      await app.end();

      // Removing a credential by SIGHUP locks it out.
      await writeConfig("hup.json", ["batch"]);
      const mark = gw.logs().length;
      gw.child.kill("SIGHUP");
      await gw.waitForLog((l) => l.event === "config_reloaded", { from: mark });
      await assert.rejects(login(port, "app"), { code: "28P01" });
      await login(port, "batch");
      assert.equal(await gw.stop(), 0);
    } finally {
      gw.child.kill("SIGKILL");
    }
  });

  it("without --no-watch, an edit to the file reloads it", async () => {
    await writeConfig("watched.json", ["app"]);
    const gw = startGateway(["--config", "watched.json", "--listen", "127.0.0.1:0"], {
      cwd: dir.path,
      env: env(),
    });
    try {
      const port = await gw.listening;
      await writeConfig("watched.json", ["app", "batch"]);
      const reloaded = await gw.waitForLog((l) => l.event === "config_reloaded");
      assert.equal(reloaded.reason, "file changed");
      await login(port, "batch");
      assert.equal(await gw.stop(), 0);
    } finally {
      gw.child.kill("SIGKILL");
    }
  });

  it("SIGTERM drains: new connections are refused, idle clients close at once, a running transaction commits", async () => {
    await writeConfig("drain.json", ["app"]);
    const gw = startGateway(["--config", "drain.json", "--listen", "127.0.0.1:0"], {
      cwd: dir.path,
      env: env(),
    });
    try {
      const port = await gw.listening;
      const busy = gatewayClient(port, { user: "app", password: "app-pw", database: "orders" });
      const idle = gatewayClient(port, { user: "app", password: "app-pw", database: "orders" });
      await Promise.all([busy.connect(), idle.connect()]);
      const idleEnded = new Promise((resolve) => idle.once("end", resolve));
      const busyEnded = new Promise((resolve) => busy.once("end", resolve));
      await busy.query("begin");
      await busy.query("create temp table t (n int) on commit drop");

      gw.child.kill("SIGTERM");
      const draining = await gw.waitForLog((l) => l.event === "draining");
      assert.equal(draining.signal, "SIGTERM");
      assert.ok(Number(draining.clients) >= 1, JSON.stringify(draining));
      await assert.rejects(login(port, "app"), { code: "ECONNREFUSED" });
      // The idle client is closed at once; the one inside a transaction may finish it.
      await idleEnded;

      await busy.query("insert into t values (1)");
      await busy.query("select pg_sleep(0.2)");
      assert.deepEqual((await busy.query("select count(*)::int as c from t")).rows, [{ c: 1 }]);
      await busy.query("commit");
      // Once nothing is running, every client is closed (57P01) and the process exits 0.
      await busyEnded;
      assert.equal(await gw.exited, 0);
      const stopped = gw.logs().find((l) => l.event === "stopped");
      assert.ok(stopped && typeof stopped.ms === "number" && stopped.ms < 10_000, JSON.stringify(stopped));
    } finally {
      gw.child.kill("SIGKILL");
    }
  });
});
