import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { spawnPgbind } from "./pgbind-process.ts";

const root = path.resolve(import.meta.dirname, "../../..");

function start(args: string[], cwd = root) {
  const run = spawnPgbind(["gateway", ...args], cwd);
  const listening = run.waitFor(/listening on [^\s]+:(\d+)/).then((match) => Number(match[1]));
  // Tests that expect an early exit await `exited` instead.
  listening.catch(() => {});
  return {
    child: run.child,
    listening,
    exited: run.exit,
    output: () => ({ stdout: run.stdout(), stderr: run.stderr() }),
  };
}

describe("pgbind gateway", () => {
  let origin: TestPostgres;
  let running: ChildProcess | undefined;
  before(async () => {
    origin = await startTestPostgres();
  });
  after(async () => {
    running?.kill("SIGKILL");
    await origin.stop();
  });

  it("serves one origin from --origin, and drains on SIGTERM with exit 0", async () => {
    const url = `postgres://${origin.user}:${encodeURIComponent(origin.password)}@127.0.0.1:${origin.port}/postgres?sslmode=disable`;
    const gw = start([
      "--origin",
      url,
      "--user",
      "app",
      "--password",
      "app-secret",
      "--pool-size",
      "2",
      "--listen",
      "127.0.0.1:0",
    ]);
    running = gw.child;
    const port = await gw.listening;
    assert.match(
      gw.output().stdout,
      /Clients connect with: postgres:\/\/app:\*{8}@127\.0\.0\.1:<port>\/postgres\?sslmode=disable/,
    );
    const client = new pg.Client({
      host: "127.0.0.1",
      port,
      user: "app",
      password: "app-secret",
      database: "postgres",
    });
    await client.connect();
    assert.deepEqual((await client.query("select 40 + 2 as n")).rows, [{ n: 42 }]);
    await client.end();
    gw.child.kill("SIGTERM");
    assert.equal(await gw.exited, 0);
    const { stdout, stderr } = gw.output();
    assert.doesNotMatch(stdout + stderr, new RegExp(origin.password.replace(/[^\w]/g, "\\$&")));
    assert.doesNotMatch(stdout + stderr, /app-secret/);
    // stderr holds the logs: pino JSON lines with level names.
    const logs = stderr
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as { level: string; event: string; msg: string; time: string });
    assert.deepEqual(
      logs.map((l) => `${l.level} ${l.event}`),
      ["info config_applied", "info listening", "info draining", "info stopped"],
    );
    assert.ok(logs.every((l) => l.msg && !Number.isNaN(Date.parse(l.time))));
  });

  it("rejects a bad config file with every problem and exit code 2", async () => {
    const dir = await makeTempDir("gw-cli");
    try {
      await writeFile(
        path.join(dir.path, "gateway.json"),
        JSON.stringify({ bindings: [{ id: "x", database: "d", credentials: [] }] }),
      );
      const gw = start(["--config", "gateway.json", "--listen", "127.0.0.1:0"], dir.path);
      assert.equal(await gw.exited, 2);
      const { stderr } = gw.output();
      assert.match(stderr, /bindings\[0\]\.credentials: must be a non-empty array/);
      assert.match(stderr, /bindings\[0\]\.origin: must be an object/);
    } finally {
      await dir.remove();
    }
  });

  it("rejects contradictory flags with exit code 2", async () => {
    const gw = start(["--listen", "nope"]);
    assert.equal(await gw.exited, 2);
    assert.match(gw.output().stderr, /give one of --config <file>, --store .* or --origin <url>/);
  });

  it("rejects an unknown --log-level naming the valid ones, and --no-watch without --config", async () => {
    const origin = "postgres://u:p@127.0.0.1:5432/db";
    const bad = start(["--origin", origin, "--log-level", "verbose"]);
    assert.equal(await bad.exited, 2);
    assert.match(bad.output().stderr, /--log-level: "verbose" is not one of trace, debug, info, warn, error/);
    const noWatch = start(["--origin", origin, "--no-watch"]);
    assert.equal(await noWatch.exited, 2);
    assert.match(noWatch.output().stderr, /--no-watch goes with --config/);
  });

  it("--log-level warn leaves out the info lines", async () => {
    const url = `postgres://${origin.user}:${encodeURIComponent(origin.password)}@127.0.0.1:${origin.port}/postgres?sslmode=disable`;
    const gw = start(["--origin", url, "--listen", "127.0.0.1:0", "--log-level", "warn"]);
    running = gw.child;
    const port = await gw.listening;
    const client = new pg.Client({
      host: "127.0.0.1",
      port,
      user: "app",
      password: "wrong",
      database: "postgres",
    });
    client.on("error", () => {});
    await assert.rejects(client.connect(), /password authentication failed/);
    gw.child.kill("SIGTERM");
    assert.equal(await gw.exited, 0);
    const lines = gw.output().stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, gw.output().stderr);
    assert.equal(JSON.parse(lines[0] as string).event, "auth_failed");
  });
});

describe("pgbind gateway operations", () => {
  it("serves the admin console (psql-style simple queries) and Prometheus metrics", async () => {
    const origin = await startTestPostgres();
    const url = `postgres://${origin.user}:${encodeURIComponent(origin.password)}@127.0.0.1:${origin.port}/postgres?sslmode=disable`;
    const gw = spawnPgbind(
      [
        "gateway",
        "--origin",
        url,
        "--user",
        "app",
        "--password",
        "app-pw",
        "--listen",
        "127.0.0.1:0",
        "--admin-user",
        "admin",
        "--metrics",
        "127.0.0.1:0",
      ],
      root,
      { PGBIND_ADMIN_PASSWORD: "admin-pw" },
    );
    try {
      await gw.waitFor(/metrics on /);
      const stdout = gw.stdout();
      const port = Number(/listening on [^\s]+:(\d+)/.exec(stdout)?.[1]);
      const metricsUrl = /metrics on (http:\/\/\S+)\/metrics/.exec(stdout)?.[1] as string;
      const app = new pg.Client({
        host: "127.0.0.1",
        port,
        user: "app",
        password: "app-pw",
        database: "postgres",
      });
      await app.connect();
      await app.query("select 1");
      const admin = new pg.Client({
        host: "127.0.0.1",
        port,
        user: "admin",
        password: "admin-pw",
        database: "pgbind",
      });
      await admin.connect();
      const pools = await admin.query("SHOW POOLS");
      assert.equal(pools.rows[0]?.database, "postgres");
      assert.equal(pools.rows[0]?.pool_mode, "transaction");
      const clients = await admin.query("SHOW CLIENTS");
      assert.ok(clients.rows.some((r) => r.user === "app"));
      const config = await admin.query("SHOW CONFIG");
      assert.doesNotMatch(JSON.stringify(config.rows), new RegExp(origin.password.replace(/[^\w]/g, "\\$&")));
      await admin.query("PAUSE");
      assert.equal((await fetch(`${metricsUrl}/healthz`)).status, 503);
      await admin.query("RESUME");
      assert.equal((await fetch(`${metricsUrl}/healthz`)).status, 200);
      const text = await (await fetch(`${metricsUrl}/metrics`)).text();
      assert.match(text, /pgbind_gateway_transactions_total\{database="postgres"\} [1-9]/);
      await admin.end();
      await app.end();
      const bad = new pg.Client({
        host: "127.0.0.1",
        port,
        user: "admin",
        password: "wrong",
        database: "pgbind",
      });
      bad.on("error", () => {});
      await assert.rejects(bad.connect(), /password authentication failed/);
    } finally {
      await gw.stop();
      await origin.stop();
    }
  });
});
