import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";

const root = path.resolve(import.meta.dirname, "../../..");
const PGBIND = path.join(root, "node_modules/.bin/pgbind");

function start(args: string[], cwd = root) {
  const child = spawn(PGBIND, ["gateway", ...args], {
    cwd,
    env: { PATH: process.env.PATH },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const listening = new Promise<number>((resolve, reject) => {
    const check = () => {
      const match = /listening on [^\s]+:(\d+)/.exec(stdout);
      if (match) resolve(Number(match[1]));
    };
    child.stdout?.on("data", check);
    exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  // Tests that expect an early exit await `exited` instead.
  listening.catch(() => {});
  return { child, listening, exited, output: () => ({ stdout, stderr }) };
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
    assert.match(gw.output().stderr, /either --config <file> or --origin <url>/);
  });
});
