import assert from "node:assert/strict";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { LocalPostgres, LocalPostgresError, randomPassword } from "../src/index.ts";

let dir: { path: string; remove: () => Promise<void> };
before(async () => {
  dir = await makeTempDir("local-pg");
});
after(() => dir.remove());

async function query(server: LocalPostgres, password: string, sql: string) {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: "postgres",
    password,
    database: "postgres",
  });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("randomPassword", () => {
  it("is base64url of the asked length and never starts with a dash, so it can follow a CLI flag", () => {
    // One draw in 64 started with "-" before; 2000 draws miss that with probability ~1e-14.
    for (let i = 0; i < 2000; i++) {
      const password = randomPassword();
      assert.match(password, /^[A-Za-z0-9_][A-Za-z0-9_-]{23}$/);
    }
    assert.equal(randomPassword(32).length, 43);
  });
});

describe("LocalPostgres", () => {
  it("initialises, keeps data across a restart on the same port, and stops its process", async () => {
    const dataDir = path.join(dir.path, "keep");
    const first = await LocalPostgres.start({ dataDir, password: "pw-1", durable: false });
    assert.equal(first.created, true);
    await query(first, "pw-1", "create table kept (v text); insert into kept values ('still here')");
    const { pid, port } = first;
    await first.stop();
    assert.throws(() => process.kill(pid as number, 0), /ESRCH/);

    const second = await LocalPostgres.start({ dataDir, password: "pw-1", port, durable: false });
    try {
      assert.equal(second.created, false);
      assert.equal(second.port, port);
      assert.deepEqual(await query(second, "pw-1", "select v from kept"), [{ v: "still here" }]);
    } finally {
      await second.stop();
    }
  });

  it("requires SCRAM passwords: a wrong password is refused", async () => {
    const server = await LocalPostgres.start({
      dataDir: path.join(dir.path, "auth"),
      password: "right",
      durable: false,
    });
    try {
      await assert.rejects(query(server, "wrong", "select 1"), /password authentication failed/);
    } finally {
      await server.stop();
    }
  });

  it("says so when the chosen port is taken", async () => {
    const blocker = net.createServer().listen(0, "127.0.0.1");
    await new Promise((r) => blocker.once("listening", r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await assert.rejects(
        LocalPostgres.start({ dataDir: path.join(dir.path, "busy"), password: "pw", port, durable: false }),
        (error: unknown) =>
          error instanceof LocalPostgresError &&
          error.code === "PORT_IN_USE" &&
          error.message.includes(String(port)),
      );
    } finally {
      blocker.close();
    }
  });

  it("refuses a non-empty directory that holds no cluster", async () => {
    const dataDir = path.join(dir.path, "junk");
    await mkdir(dataDir, { recursive: true });
    await writeFile(path.join(dataDir, "notes.txt"), "not a cluster");
    await assert.rejects(
      LocalPostgres.start({ dataDir, password: "pw", durable: false }),
      (error: unknown) =>
        error instanceof LocalPostgresError &&
        error.code === "INITDB_FAILED" &&
        /no PG_VERSION/.test(error.message),
    );
  });

  it("as root, explains a data directory the postgres account cannot reach", {
    skip: process.getuid?.() !== 0,
  }, async () => {
    const locked = path.join(dir.path, "locked");
    await mkdir(locked);
    await chmod(locked, 0o700);
    await assert.rejects(
      LocalPostgres.start({ dataDir: path.join(locked, "data"), password: "pw", durable: false }),
      (error: unknown) =>
        error instanceof LocalPostgresError &&
        error.code === "INVALID_OPTIONS" &&
        /cannot reach/.test(error.message),
    );
  });
});
