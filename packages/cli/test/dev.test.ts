import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { PGBIND, spawnPgbind } from "./pgbind-process.ts";

const root = path.resolve(import.meta.dirname, "../../..");

/**
 * A command for `pgbind dev -- …` that uses the injected binding like a workload would: the SDK
 * resolves it, pg connects, and it runs the SQL given in its argument.
 */
const WORKLOAD = `
import { createRequire } from "node:module";
const require = createRequire(${JSON.stringify(`${root}/package.json`)});
const pg = require("pg");
const { getPostgresConnection, pgConfig } = await import(${JSON.stringify(`${root}/packages/sdk/dist/index.js`)});
const conn = await getPostgresConnection("DB");
const client = new pg.Client(pgConfig(conn));
await client.connect();
const result = await client.query(process.argv[2]);
const { rows } = Array.isArray(result) ? result.at(-1) : result;
await client.end();
console.log(JSON.stringify({ rows, url: conn.redactedConnectionString, password: conn.password }));
`;

/** Runs `pgbind <args>` in `cwd`; `done` resolves when it has ended. */
function pgbind(args: string[], cwd: string) {
  const run = spawnPgbind(args, cwd);
  const done = run.exit.then((code) => ({ code, stdout: run.stdout(), stderr: run.stderr() }));
  return { child: run.child, done };
}

async function project(name: string) {
  const dir = await makeTempDir(name);
  await writeFile(
    path.join(dir.path, "w7s.json"),
    JSON.stringify({ bindings: { hyperdrive: [{ binding: "DB", id: "local-db" }] } }),
  );
  await writeFile(path.join(dir.path, "workload.mjs"), WORKLOAD);
  return dir;
}

function sqlIn(dir: string, sql: string, extra: string[] = []) {
  return pgbind(["dev", ...extra, "--", process.execPath, path.join(dir, "workload.mjs"), sql], dir).done;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function postmasterPid(dir: string): Promise<number> {
  const pidFile = await readFile(path.join(dir, ".pgbind/data/postmaster.pid"), "utf8");
  return Number(pidFile.split("\n")[0]);
}

describe("pgbind dev", () => {
  let a: { path: string; remove: () => Promise<void> };
  let b: { path: string; remove: () => Promise<void> };
  before(async () => {
    [a, b] = await Promise.all([project("dev-a"), project("dev-b")]);
  });
  after(async () => {
    await Promise.all([a.remove(), b.remove()]);
  });

  it("starts PostgreSQL, the command gets a working binding, and data survives a restart", async () => {
    const first = await sqlIn(
      a.path,
      "create table notes (body text); insert into notes values ('kept') returning body",
    );
    assert.equal(first.code, 0, first.stderr);
    const one = JSON.parse(first.stdout);
    assert.deepEqual(one.rows, [{ body: "kept" }]);
    assert.match(one.url, /^postgres:\/\/postgres:\*{8}@127\.0\.0\.1:\d+\/db\?sslmode=disable$/);
    assert.match(first.stderr, /initialising a new PostgreSQL cluster/);
    assert.match(first.stderr, /DB\s+postgres:\/\/postgres:\*{8}@127\.0\.0\.1:\d+\/db\?sslmode=disable/);
    assert.match(first.stderr, /psql: PGPASSFILE=\S+pgpass psql -h 127\.0\.0\.1 -p \d+ -U postgres db/);
    assert.ok(!first.stderr.includes(one.password), "the banner must not print the password");

    const second = await sqlIn(a.path, "select body from notes");
    assert.equal(second.code, 0, second.stderr);
    const two = JSON.parse(second.stdout);
    assert.deepEqual(two.rows, [{ body: "kept" }]);
    assert.equal(two.url, one.url, "same port across restarts");
    assert.equal(two.password, one.password, "same password across restarts");
    assert.doesNotMatch(second.stderr, /initialising/);
  });

  it("--fresh starts over", async () => {
    const fresh = await sqlIn(a.path, "select count(*)::int as n from pg_tables where tablename = 'notes'", [
      "--fresh",
    ]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.deepEqual(JSON.parse(fresh.stdout).rows, [{ n: 0 }]);
  });

  it("returns the command's exit code", async () => {
    const { code } = await pgbind(["dev", "--", process.execPath, "-e", "process.exit(7)"], a.path).done;
    assert.equal(code, 7);
  });

  it("runs two projects side by side", async () => {
    const [x, y] = await Promise.all([
      sqlIn(a.path, "select pg_sleep(0.5), inet_server_port() as port"),
      sqlIn(b.path, "select pg_sleep(0.5), inet_server_port() as port"),
    ]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal(y.code, 0, y.stderr);
    assert.notEqual(JSON.parse(x.stdout).rows[0].port, JSON.parse(y.stdout).rows[0].port);
  });

  it("on SIGINT stops a command that ignores SIGTERM, then PostgreSQL, leaving no process behind", async () => {
    const stubborn = `process.on("SIGTERM", () => {}); console.log(process.pid); setInterval(() => {}, 1000);`;
    const { child, done } = pgbind(
      ["dev", "--grace-ms", "500", "--", process.execPath, "-e", stubborn],
      a.path,
    );
    let output = "";
    const commandPid = await new Promise<number>((resolve) =>
      child.stdout?.on("data", (d: Buffer) => {
        output += d.toString();
        if (/^\d+\n/.test(output)) resolve(Number(output.trim()));
      }),
    );
    const serverPid = await postmasterPid(a.path);
    assert.ok(alive(commandPid) && alive(serverPid));
    child.kill("SIGINT");
    const result = await done;
    assert.equal(result.code, 128 + 9, result.stderr);
    assert.match(result.stderr, /SIGINT: stopping the command, then PostgreSQL/);
    assert.equal(alive(commandPid), false, "command still running");
    assert.equal(alive(serverPid), false, "PostgreSQL still running");
  });

  it("explains a remembered port that another process took", async () => {
    const state = JSON.parse(await readFile(path.join(b.path, ".pgbind/state.json"), "utf8"));
    const blocker = net.createServer().listen(state.port, "127.0.0.1");
    await new Promise((r) => blocker.once("listening", r));
    try {
      const result = await sqlIn(b.path, "select 1");
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`port ${state.port} .* is taken by another process`));
      assert.match(result.stderr, /--fresh/);
    } finally {
      blocker.close();
    }
  });

  it("pgbind run checks the manifest's bindings and passes them to the command", async () => {
    const ok = await pgbind(
      [
        "dev",
        "--",
        PGBIND,
        "run",
        "--",
        process.execPath,
        path.join(a.path, "workload.mjs"),
        "select 40 + 2 as n",
      ],
      a.path,
    ).done;
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout).rows, [{ n: 42 }]);
    const outside = await pgbind(["run", "--", process.execPath, "-e", "process.exit(0)"], a.path).done;
    assert.equal(outside.code, 2);
    assert.match(
      outside.stderr,
      /binding DB \(id "local-db"\) is not available: PGBIND_DB_BINDING is not set/,
    );
    assert.match(outside.stderr, /pgbind dev -- pgbind run -- <command>/);
    const noCommand = await pgbind(["run"], a.path).done;
    assert.equal(noCommand.code, 2);
    assert.match(noCommand.stderr, /expected a command after --/);
  });

  it("rejects bad usage with exit code 2", async () => {
    const both = await pgbind(["dev", "--serve", "x.js", "--", "true"], a.path).done;
    assert.equal(both.code, 2);
    assert.match(both.stderr, /either --serve <entry> or -- <command>/);
    const missing = await pgbind(["dev", "--manifest", "nope.json", "--", "true"], a.path).done;
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.json/);
  });
});
