import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import {
  BackendMessage,
  buildQuery,
  buildSASLInitialResponse,
  buildSASLResponse,
  buildStartupMessage,
  createScramVerifier,
  type ErrorFields,
  MessageFramer,
  parseAuthentication,
  parseErrorResponse,
  ScramClientSession,
} from "@pgbind/protocol";
import pg from "pg";
import postgres from "postgres";
import { createTestPki } from "../../../test-support/pki.ts";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { type ConfigSource, DEFAULT_TIMEOUTS, Gateway, type GatewayConfig } from "../src/index.ts";

const CLIENT_PASSWORD = "client:p@ss/word";

let origin: TestPostgres;
let gateway: Gateway;
let port: number;
let caCert: string;

function staticSource(config: GatewayConfig): ConfigSource {
  return { description: "test", load: async () => config, watch: () => () => {} };
}

function client(overrides: Partial<pg.ClientConfig> = {}) {
  const c = new pg.Client({
    host: "127.0.0.1",
    port,
    user: "app",
    password: CLIENT_PASSWORD,
    database: "appdb",
    ...overrides,
  });
  c.on("error", () => {});
  return c;
}

/** A postgres.js client of the test binding, as {@link client} is for pg. */
function sqlClient(options: postgres.Options<Record<string, postgres.PostgresType>> = {}) {
  return postgres({
    host: "127.0.0.1",
    port,
    user: "app",
    pass: CLIENT_PASSWORD,
    database: "appdb",
    ...options,
  });
}

before(async () => {
  const pki = await createTestPki();
  caCert = pki.caCert;
  origin = await startTestPostgres();
  const config: GatewayConfig = {
    bindings: [
      {
        id: "appdb",
        database: "appdb",
        credentials: [{ user: "app", scramVerifier: createScramVerifier(CLIENT_PASSWORD) }],
        origin: {
          host: origin.host,
          port: origin.port,
          database: "postgres",
          user: origin.user,
          password: origin.password,
          sslmode: "disable",
        },
        poolMode: "transaction",
        poolSize: 2,
        timeouts: { ...DEFAULT_TIMEOUTS, queryWaitMs: 2_000 },
      },
    ],
  };
  gateway = new Gateway({
    source: staticSource(config),
    port: 0,
    tls: tls.createSecureContext({ cert: pki.serverCert, key: pki.serverKey }),
  });
  port = (await gateway.start()).port;
});

after(async () => {
  await gateway?.close(1_000);
  await origin?.stop();
});

describe("gateway with real drivers", () => {
  it("authenticates with SCRAM and runs simple and extended queries (pg)", async () => {
    const c = client();
    await c.connect();
    assert.deepEqual((await c.query("select 1 as one")).rows, [{ one: 1 }]);
    assert.deepEqual((await c.query("select $1::int + 1 as n", [41])).rows, [{ n: 42 }]);
    assert.deepEqual(
      (await c.query({ name: "add", text: "select $1::int + $2::int as n", values: [1, 2] })).rows,
      [{ n: 3 }],
    );
    const { rows } = await c.query("select current_setting('server_version') as v");
    assert.match(rows[0].v, /^17\./);
    await c.end();
  });

  it("the workload never sees the origin credentials, and TLS works for clients", async () => {
    const c = client({ ssl: { ca: caCert, servername: "localhost" }, host: "localhost" });
    await c.connect();
    const { rows } = await c.query(
      "select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as origin_ssl",
    );
    assert.equal(rows[0].origin_ssl, false, "this origin is plaintext; the client leg is TLS");
    assert.ok(
      (c as unknown as { connection: { stream: unknown } }).connection.stream instanceof tls.TLSSocket,
    );
    await c.end();
  });

  it("refuses a wrong password, an unknown user and an unknown database alike (28P01)", async () => {
    for (const overrides of [{ password: "wrong" }, { user: "nobody" }, { database: "nodb" }]) {
      const c = client(overrides);
      await assert.rejects(c.connect(), (e: { code?: string; message: string }) => {
        assert.equal(e.code, "28P01");
        assert.match(e.message, /password authentication failed/);
        return true;
      });
    }
  });

  it("shares a pool of 2 server connections between 10 clients in transaction mode", async () => {
    const clients = Array.from({ length: 10 }, () => client());
    await Promise.all(clients.map((c) => c.connect()));
    const results = await Promise.all(
      clients.map(async (c, i) => {
        await c.query("begin");
        await c.query("select pg_sleep(0.02)");
        const { rows } = await c.query("select $1::int as i", [i]);
        await c.query("commit");
        return rows[0].i;
      }),
    );
    assert.deepEqual(results, [...Array(10).keys()]);
    const pids = new Set<number>();
    for (const c of clients) pids.add((await c.query("select pg_backend_pid() as pid")).rows[0].pid);
    assert.ok(pids.size <= 2, `expected at most 2 origin backends, saw ${pids.size}`);
    await Promise.all(clients.map((c) => c.end()));
  });

  it("keeps a transaction on one server connection and reports errors mid-transaction", async () => {
    const a = client();
    await a.connect();
    await a.query("begin");
    const pid = (await a.query("select pg_backend_pid() as pid")).rows[0].pid;
    await assert.rejects(a.query("select 1/0"), /division by zero/);
    await assert.rejects(a.query("select 1"), /current transaction is aborted/);
    await a.query("rollback");
    assert.equal(typeof pid, "number");
    assert.deepEqual((await a.query("select 2 as two")).rows, [{ two: 2 }]);
    await a.end();
  });

  it("refuses session features in transaction mode with 0A000", async () => {
    const c = client();
    await c.connect();
    await assert.rejects(c.query("LISTEN channel"), (e: { code?: string; message: string }) => {
      assert.equal(e.code, "0A000");
      assert.match(e.message, /LISTEN is not supported in transaction pooling mode/);
      return true;
    });
    assert.deepEqual((await c.query("select 1 as ok")).rows, [{ ok: 1 }]);
    await c.end();
  });

  it("refuses session features sent with the extended protocol too (pg and postgres.js)", async () => {
    const c = client();
    await c.connect();
    const refused = (e: { code?: string; message: string }) => {
      assert.equal(e.code, "0A000");
      assert.match(e.message, /advisory locks is not supported in transaction pooling mode/);
      return true;
    };
    await assert.rejects(c.query({ text: "select pg_advisory_lock($1)", values: [42] }), refused);
    await assert.rejects(
      c.query({ name: "lock", text: "select pg_advisory_lock($1)", values: [42] }),
      refused,
    );
    assert.deepEqual((await c.query({ text: "select $1::int as ok", values: [1] })).rows, [{ ok: 1 }]);
    // Inside a transaction the refusal fails the transaction, exactly as a server error would.
    await c.query("begin");
    await assert.rejects(
      c.query({ text: "select pg_try_advisory_lock($1)", values: [7] }),
      (e: { code?: string }) => e.code === "0A000",
    );
    await assert.rejects(
      c.query({ text: "select $1::int", values: [1] }),
      (e: { code?: string }) => e.code === "25P02",
    );
    await c.query("rollback");
    assert.deepEqual((await c.query({ text: "select $1::text as v", values: ["after"] })).rows, [
      { v: "after" },
    ]);
    // No advisory lock was taken on any server connection.
    const { rows } = await c.query("select count(*)::int as n from pg_locks where locktype = 'advisory'");
    assert.deepEqual(rows, [{ n: 0 }]);
    await c.end();

    const sql = sqlClient({ max: 1 });
    try {
      await assert.rejects(sql`select pg_advisory_lock(${5})`, (e: { code?: string }) => e.code === "0A000");
      await assert.rejects(sql`prepare p as select 1`, (e: { code?: string }) => e.code === "0A000");
      const [row] = await sql`select ${"still fine"}::text as v`;
      assert.equal(row?.v, "still fine");
    } finally {
      await sql.end();
    }
  });

  it("works with postgres.js: prepared statements, transactions and sql.begin", async () => {
    const sql = sqlClient({ max: 3, prepare: false, onnotice: () => {} });
    try {
      const [row] = await sql`select ${5}::int * 2 as n`;
      assert.equal(row?.n, 10);
      const result = await sql.begin(async (tx) => {
        await tx`create temporary table t (v int) on commit drop`;
        await tx`insert into t values (1), (2)`;
        const [r] = await tx`select sum(v)::int as s from t`;
        return r?.s;
      });
      assert.equal(result, 3);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it("named prepared statements follow clients across server connections (pg)", async () => {
    const clients = Array.from({ length: 6 }, () => client());
    await Promise.all(clients.map((c) => c.connect()));
    for (let round = 0; round < 5; round++) {
      const results = await Promise.all(
        clients.map((c, i) =>
          c.query({ name: "twice", text: "select $1::int * 2 as n", values: [i + round] }),
        ),
      );
      assert.deepEqual(
        results.map((r) => r.rows[0].n),
        clients.map((_, i) => (i + round) * 2),
      );
    }
    // A statement that fails to prepare is reported, and the client goes on.
    await assert.rejects(
      clients[0]?.query({ name: "bad", text: "select nope from nowhere" }) as Promise<unknown>,
      /does not exist/,
    );
    assert.deepEqual(
      (await clients[0]?.query({ name: "twice", text: "select $1::int * 2 as n", values: [7] }))?.rows,
      [{ n: 14 }],
    );
    await Promise.all(clients.map((c) => c.end()));
  });

  it("postgres.js in its default prepared mode works across transactions and clients", async () => {
    const sql = sqlClient({ max: 6, onnotice: () => {} });
    try {
      for (let round = 0; round < 4; round++) {
        const rows = await Promise.all(
          Array.from({ length: 12 }, (_, i) => sql`select ${i}::int + ${round}::int as n`),
        );
        assert.deepEqual(
          rows.map((r) => r[0]?.n),
          Array.from({ length: 12 }, (_, i) => i + round),
        );
      }
      const total = await sql.begin(async (tx) => {
        const [a] = await tx`select ${1}::int as v`;
        const [b] = await tx`select ${2}::int as v`;
        return (a?.v ?? 0) + (b?.v ?? 0);
      });
      assert.equal(total, 3);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it("lists idle server connections as well as busy ones (SHOW SERVERS)", async () => {
    const c = client();
    await c.connect();
    await c.query("select 1");
    const idle = gateway.view().servers();
    assert.ok(idle.length >= 1, "the server connection that ran the query stays in the pool");
    assert.ok(idle.every((s) => s.state === "idle" && s.database === "appdb"));
    await c.query("begin");
    const during = gateway.view().servers();
    assert.equal(during.filter((s) => s.state === "active").length, 1);
    assert.equal(during.length, idle.length);
    await c.query("rollback");
    await c.end();
  });

  it("answers 53300 when no server connection frees up within queryWaitMs", async () => {
    const holders = [client(), client()];
    await Promise.all(holders.map((c) => c.connect()));
    await Promise.all(holders.map((c) => c.query("begin")));
    await Promise.all(holders.map((c) => c.query("select 1")));
    const waiter = client();
    await waiter.connect();
    await assert.rejects(waiter.query("select 1"), (e: { code?: string }) => e.code === "53300");
    await Promise.all(holders.map((c) => c.query("rollback")));
    await Promise.all(holders.map((c) => c.end()));
  });

  it("gives each client its own application_name on whichever server connection serves it", async () => {
    const names = ["alpha", "beta", "it's \\ quoted", "alpha"];
    const clients = names.map((name) => client({ application_name: name }));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      for (let round = 0; round < 5; round++) {
        // Two server connections for four clients: every round moves names between them.
        const seen = await Promise.all(
          clients.map(async (c) => {
            const { rows } = await c.query(
              "select current_setting('application_name') as setting, (select application_name from pg_stat_activity where pid = pg_backend_pid()) as activity",
            );
            return rows[0] as { setting: string; activity: string };
          }),
        );
        assert.deepEqual(
          seen,
          names.map((name) => ({ setting: name, activity: name })),
        );
      }
      // The extended protocol, after the hidden SET on a fresh attachment, too.
      const extended = await (clients[2] as pg.Client).query({
        text: "select current_setting($1) as v",
        values: ["application_name"],
      });
      assert.equal(extended.rows[0].v, names[2]);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it("keeps each client's SET TimeZone, DateStyle and application_name across transactions, and no one else's", async () => {
    const a = client();
    const b = client();
    const c = client();
    await Promise.all([a.connect(), b.connect(), c.connect()]);
    const settings = async (x: pg.Client) =>
      (
        await x.query(
          "select current_setting('TimeZone') as tz, current_setting('DateStyle') as ds, current_setting('application_name') as app",
        )
      ).rows[0] as { tz: string; ds: string; app: string };
    try {
      const defaults = await settings(b);
      await a.query("set timezone = 'Asia/Tokyo'");
      await a.query("set datestyle = 'SQL, DMY'");
      await a.query("set application_name = 'a-later'");
      // SET LOCAL lasts for its transaction only, and the server says so when it ends.
      await a.query("begin");
      await a.query("set local timezone = 'UTC'");
      assert.equal((await settings(a)).tz, "UTC");
      await a.query("commit");
      for (let round = 0; round < 6; round++) {
        // Three clients on two server connections: every round moves them between connections.
        const [sa, sb, sc] = await Promise.all([settings(a), settings(b), settings(c)]);
        assert.deepEqual(sa, { tz: "Asia/Tokyo", ds: "SQL, DMY", app: "a-later" }, `round ${round}`);
        assert.deepEqual(sb, defaults, `round ${round}`);
        assert.deepEqual(sc, defaults, `round ${round}`);
      }
      // What the server reports is what the client keeps: RESET returns to the default.
      await a.query("reset timezone");
      await Promise.all([settings(b), settings(c)]);
      assert.equal((await settings(a)).tz, defaults.tz);
    } finally {
      await Promise.all([a.end(), b.end(), c.end()]);
    }
  });

  it("applies TimeZone and DateStyle from the startup packet, and refuses bad ones as PostgreSQL does (postgres.js)", async () => {
    const sql = sqlClient({ max: 1, connection: { TimeZone: "America/New_York", DateStyle: "ISO, DMY" } });
    try {
      const [row] = await sql`select current_setting('TimeZone') as tz, current_setting('DateStyle') as ds`;
      assert.deepEqual({ ...row }, { tz: "America/New_York", ds: "ISO, DMY" });
      const reported = (sql as unknown as { parameters: Record<string, string> }).parameters;
      assert.equal(reported.TimeZone, "America/New_York");
    } finally {
      await sql.end();
    }
    // PostgreSQL refuses a bad value at start-up; the gateway learns it at the client's first statement
    // and answers with the same FATAL then. (postgres.js is not used here: a FATAL in the middle of its
    // describe-first round also surfaces as an unhandled rejection inside the driver.)
    const refusal = await firstStatementAs({ TimeZone: "Not/AZone", application_name: "bad-tz" });
    assert.equal(refusal.severity, "FATAL");
    assert.equal(refusal.code, "22023");
    assert.match(refusal.message, /TimeZone="Not\/AZone"/);
    // The refused client took nothing with it: others still get the origin's default.
    const c = client();
    await c.connect();
    assert.notEqual((await c.query("select current_setting('TimeZone') as tz")).rows[0].tz, "Not/AZone");
    await c.end();
  });

  it("reports the client's own application_name at start-up (postgres.js)", async () => {
    const sql = sqlClient({ connection: { application_name: "from-postgres-js" }, max: 1 });
    try {
      const [row] = await sql`select current_setting('application_name') as v`;
      assert.equal(row?.v, "from-postgres-js");
      assert.equal(
        (sql as unknown as { parameters: Record<string, string> }).parameters.application_name,
        "from-postgres-js",
      );
    } finally {
      await sql.end();
    }
  });
});

/** Logs in over a raw socket with these startup parameters, runs `select 1`, returns the first ErrorResponse. */
function firstStatementAs(parameters: Record<string, string>): Promise<ErrorFields> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const framer = new MessageFramer();
    let scram: ScramClientSession | undefined;
    let sent = false;
    socket.on("error", reject);
    socket.on("close", () => reject(new Error("closed without an ErrorResponse")));
    socket.on("connect", () =>
      socket.write(buildStartupMessage({ user: "app", database: "appdb", ...parameters })),
    );
    socket.on("data", (chunk) =>
      framer.push(chunk, (frame) => {
        if (frame.code === BackendMessage.Authentication) {
          const auth = parseAuthentication(frame);
          if (auth.type === "SASL") {
            scram = new ScramClientSession(CLIENT_PASSWORD);
            const first = scram.clientFirst(auth.mechanisms);
            socket.write(buildSASLInitialResponse(first.mechanism, first.data));
          } else if (auth.type === "SASLContinue" && scram) {
            socket.write(buildSASLResponse(scram.handleServerFirst(auth.data)));
          }
        } else if (frame.code === BackendMessage.ReadyForQuery && !sent) {
          sent = true;
          socket.write(buildQuery("select 1"));
        } else if (frame.code === BackendMessage.ErrorResponse) {
          resolve(parseErrorResponse(frame));
          socket.destroy();
        }
      }),
    );
  });
}
