import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { buildStartupMessage } from "@pgbind/protocol";
import pg from "pg";
import postgres from "postgres";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import type { Gateway } from "../src/index.ts";
import { startGateway, testBinding } from "./support.ts";

const PASSWORD = "robust-pw";
let origin: TestPostgres;
let gateway: Gateway;
let port: number;

before(async () => {
  origin = await startTestPostgres();
  ({ gateway, port } = await startGateway(
    [testBinding(origin, { password: PASSWORD, poolSize: 1, timeouts: { queryWaitMs: 5_000 } })],
    { maxClientMessage: 1024 * 1024 },
  ));
});

after(async () => {
  await gateway?.close(500);
  await origin?.stop();
});

/** A pg client of the shared gateway, or of the gateway on `gatewayPort`. */
function client(gatewayPort = port, overrides: Partial<pg.ClientConfig> = {}) {
  const c = new pg.Client({
    host: "127.0.0.1",
    port: gatewayPort,
    user: "app",
    password: PASSWORD,
    database: "db",
    ...overrides,
  });
  c.on("error", () => {});
  return c;
}

/** The length word of a startup packet and nothing of the rest: a client stuck in start-up. */
const STARTUP_PREFIX = Buffer.from([0, 0, 0, 40]);

/** Sends raw bytes and collects whatever comes back until the gateway closes the socket. */
function raw(chunks: Buffer[], timeoutMs = 2_000, gatewayPort = port): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(gatewayPort, "127.0.0.1");
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("the gateway did not close the connection"));
    }, timeoutMs);
    socket.on("data", (d) => received.push(d));
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(received));
    });
    socket.on("error", () => {});
    socket.on("connect", async () => {
      for (const chunk of chunks) {
        socket.write(chunk);
        await new Promise((r) => setImmediate(r));
      }
    });
  });
}

async function stillServes() {
  const c = client();
  await c.connect();
  assert.deepEqual((await c.query("select 1 as ok")).rows, [{ ok: 1 }]);
  await c.end();
}

describe("session state never leaks between clients", () => {
  it("a SET outside a transaction is reset before the server connection serves the next client", async () => {
    const a = client();
    await a.connect();
    await a.query("set application_name = 'leaky'");
    await a.query("set search_path = nowhere");
    const b = client();
    await b.connect();
    const { rows } = await b.query(
      "select current_setting('application_name') as app, current_setting('search_path') as path",
    );
    // b set no application_name, so it has none (as on a direct connection), not a's "leaky".
    assert.deepEqual(rows, [{ app: "", path: '"$user", public' }]);
    await Promise.all([a.end(), b.end()]);
  });

  it("a client that disconnects mid-transaction does not hand its transaction to the next client", async () => {
    const a = client();
    await a.connect();
    await a.query("begin");
    await a.query("create temporary table t_mid (v int)");
    a.end().catch(() => {});
    const b = client();
    await b.connect();
    const { rows } = await b.query("select count(*)::int as n from pg_tables where tablename = 't_mid'");
    assert.deepEqual(rows, [{ n: 0 }]);
    assert.deepEqual((await b.query("select now() = statement_timestamp() as fresh")).rows, [
      { fresh: true },
    ]);
    await b.end();
  });
});

describe("cancel", () => {
  it("forwards a CancelRequest to the origin backend running the client's query", async () => {
    const sql = postgres({
      host: "127.0.0.1",
      port,
      user: "app",
      password: PASSWORD,
      database: "db",
      max: 1,
      onnotice: () => {},
    });
    try {
      const query = sql`select pg_sleep(10)`;
      setTimeout(() => query.cancel(), 300);
      const started = Date.now();
      await assert.rejects(query, (e: { code?: string }) => e.code === "57014");
      assert.ok(Date.now() - started < 5_000);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});

describe("hostile clients", () => {
  it("closes on garbage before start-up with a protocol error, and keeps serving", async () => {
    const reply = await raw([Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]);
    assert.ok(reply.length === 0 || reply[0] === 0x45, "either closed or an ErrorResponse");
    await stillServes();
  });

  it("refuses a giant declared length from the header, before buffering it", async () => {
    const startup = buildStartupMessage({ user: "app", database: "db" });
    const giant = Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]); // Q with a ~2 GiB length
    const reply = await raw([startup, giant]);
    assert.ok(reply.length > 0);
    await stillServes();
  });

  it("survives a start-up message split at every byte", async () => {
    const startup = buildStartupMessage({ user: "app", database: "db" });
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    const first = new Promise<Buffer>((r) => socket.once("data", r));
    for (const byte of startup) {
      socket.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    const reply = await first;
    assert.equal(reply[0], 0x52, "AuthenticationSASL after a byte-by-byte start-up");
    socket.destroy();
    await stillServes();
  });

  it("a client that never reads its results does not stop others (pool of its own binding aside)", async () => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    // Authenticate with pg, then take its socket over and stop reading.
    const greedy = client();
    await greedy.connect();
    const stream = (greedy as unknown as { connection: { stream: net.Socket } }).connection.stream;
    greedy.query("select repeat('x', 1000) from generate_series(1, 200000)").catch(() => {});
    stream.pause();
    await new Promise((r) => setTimeout(r, 500));
    const memory = process.memoryUsage().rss;
    await new Promise((r) => setTimeout(r, 500));
    // Backpressure: the gateway stopped reading the origin, so its memory did not grow with the result.
    assert.ok(process.memoryUsage().rss - memory < 50 * 1024 * 1024);
    stream.destroy();
    socket.destroy();
    await stillServes();
  });
});

describe("shutdown", () => {
  it("close() lets a running transaction finish, then disconnects clients", async () => {
    const { gateway: local, port: localPort } = await startGateway([
      testBinding(origin, { password: PASSWORD }),
    ]);
    const c = client(localPort);
    await c.connect();
    await c.query("begin");
    const closing = local.close(5_000);
    const { rows } = await c.query("select 7 as seven");
    await c.query("commit");
    assert.deepEqual(rows, [{ seven: 7 }]);
    await closing;
    await assert.rejects(c.query("select 1"));
  });
});

describe("config reload", () => {
  it("keeps clients of a changed binding working, and refuses a revoked credential at the next transaction", async () => {
    const binding = (poolSize: number, users: string[]) => ({
      bindings: [testBinding(origin, { password: PASSWORD, poolSize, users })],
    });
    const { gateway: local, port: localPort } = await startGateway(binding(1, ["app"]).bindings);
    try {
      const c = client(localPort);
      await c.connect();
      assert.deepEqual((await c.query("select 1 as n")).rows, [{ n: 1 }]);
      local.apply(binding(3, ["app", "other"]));
      assert.deepEqual((await c.query("select 2 as n")).rows, [{ n: 2 }], "still served after a reload");
      local.apply(binding(3, ["other"]));
      await assert.rejects(c.query("select 3"), /credential was revoked/);
      const again = client(localPort);
      await assert.rejects(again.connect(), /password authentication failed/);
    } finally {
      await local.close(200);
    }
  });
  it("a credential-only change (rotation) keeps the pool's server connections, and expiry refuses on time", async () => {
    const base = testBinding(origin, { password: PASSWORD, poolSize: 1, users: ["app"] });
    const { gateway: local, port: localPort } = await startGateway([base]);
    try {
      const c = client(localPort);
      await c.connect();
      const pid = async () => (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
      const before = await pid();
      const soon = new Date(Date.now() + 700);
      const [credential] = base.credentials;
      assert.ok(credential);
      // Rotation: a new credential appears and the old one expires after a grace period.
      local.apply({
        bindings: [
          {
            ...base,
            credentials: [
              { ...credential, expiresAt: soon },
              { ...credential, user: "app_next" },
            ],
          },
        ],
      });
      assert.equal(await pid(), before, "the same server connection serves the client after the change");
      const next = client(localPort, { user: "app_next" });
      await next.connect();
      assert.equal((await next.query("select pg_backend_pid() as pid")).rows[0].pid, before);
      await next.end();
      await new Promise((resolve) => setTimeout(resolve, 800));
      // No reload happened: the expiry alone ends the old credential at the next transaction.
      await assert.rejects(c.query("select 1"), /credential was revoked/);
      await assert.rejects(client(localPort).connect(), /password authentication failed/);
    } finally {
      await local.close(200);
    }
  });
});

describe("idle clients", () => {
  it("closes a client idle outside a transaction for idleClientMs with 57P05", async () => {
    const { gateway: local, port: localPort } = await startGateway([
      testBinding(origin, { password: PASSWORD, poolSize: 1, timeouts: { idleClientMs: 300 } }),
    ]);
    try {
      const c = new pg.Client({
        host: "127.0.0.1",
        port: localPort,
        user: "app",
        password: PASSWORD,
        database: "db",
      });
      const ended = new Promise<Error>((resolve) => c.on("error", resolve));
      await c.connect();
      await c.query("select 1");
      const error = (await ended) as Error & { code?: string };
      assert.equal(error.code, "57P05");
      assert.match(error.message, /idle-session timeout/);
    } finally {
      await local.close(200);
    }
  });

  it("in session mode too, and only once the client is idle: never inside a transaction", async () => {
    const binding = testBinding(origin, { password: PASSWORD, poolSize: 1, timeouts: { idleClientMs: 400 } });
    const { gateway: local, port: localPort } = await startGateway([{ ...binding, poolMode: "session" }]);
    try {
      const c = new pg.Client({
        host: "127.0.0.1",
        port: localPort,
        user: "app",
        password: PASSWORD,
        database: "db",
      });
      const ended = new Promise<Error>((resolve) => c.on("error", resolve));
      await c.connect();
      await c.query("begin");
      // Longer than idleClientMs, but a transaction is open: the statement must not be cut off.
      await c.query("select pg_sleep(0.6)");
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.deepEqual((await c.query("select 1 as still")).rows, [{ still: 1 }]);
      await c.query("commit");
      const started = Date.now();
      const error = (await ended) as Error & { code?: string };
      assert.equal(error.code, "57P05");
      assert.ok(Date.now() - started >= 300, "closed only after the idle period");
    } finally {
      await local.close(200);
    }
  });
});

describe("login timeout", () => {
  it("closes a client that does not finish start-up within loginTimeoutMs with FATAL 57014, and only such a client", async () => {
    const short = await startGateway([testBinding(origin, { password: PASSWORD })], { loginTimeoutMs: 300 });
    try {
      const started = Date.now();
      // Sends the first bytes of a startup packet and stops (a stuck client, a slowloris). One that sends
      // nothing at all is not accepted yet: the native listener defers accepting until a client speaks.
      const stuck = (await raw([STARTUP_PREFIX], 3_000, short.port)).toString("latin1");
      assert.match(stuck, /57014/);
      assert.match(stuck, /canceling authentication due to timeout/);
      // Sends its startup packet, gets AuthenticationSASL, and never answers it.
      const stalled = await raw([buildStartupMessage({ user: "app", database: "db" })], 3_000, short.port);
      assert.equal(stalled[0], 0x52, "AuthenticationSASL first");
      assert.match(stalled.toString("latin1"), /canceling authentication due to timeout/);
      assert.ok(Date.now() - started < 2_500, "both cut off after about 300 ms each");
      // A client that logged in in time keeps its connection past the timeout.
      const c = client(short.port);
      await c.connect();
      await new Promise((r) => setTimeout(r, 600));
      assert.deepEqual((await c.query("select 1 as ok")).rows, [{ ok: 1 }]);
      await c.end();
    } finally {
      await short.gateway.close(500);
    }
  });
});

describe("shutdown", () => {
  it("closes clients still logging in at once, with 57P01, and close() does not wait for them", async () => {
    const own = await startGateway([testBinding(origin, { password: PASSWORD })]);
    // Two connections stuck in start-up: one within its startup packet, one in the middle of SCRAM.
    const midPacket = raw([STARTUP_PREFIX], 5_000, own.port);
    const stalled = raw([buildStartupMessage({ user: "app", database: "db" })], 5_000, own.port);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await own.gateway.close(2_000);
    const [a, b] = await Promise.all([midPacket, stalled]);
    assert.ok(Date.now() - started < 1_500, "close() returned without waiting for the grace period");
    assert.match(a.toString("latin1"), /57P01/);
    assert.match(b.toString("latin1"), /57P01/);
  });
});
