// Real drivers through the gateway, as the issue lists them: pg (simple and extended queries, named
// prepared statements, COPY in and out, large rows, notices, errors mid-transaction, cancel) and
// postgres.js (default prepared mode, transactions, sql.begin with savepoints, cursors, COPY streams),
// in transaction mode and, for the session-sensitive ones, in session mode.
//
// COPY with pg: pg-copy-streams is not installed, so `PgCopy` below is a minimal pg Submittable that
// speaks the COPY sub-protocol itself (CopyInResponse → CopyData… CopyDone/CopyFail, CopyData from the
// server for COPY TO STDOUT), which is all pg-copy-streams does on the wire.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after as afterAll, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import postgres from "postgres";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import type { Gateway } from "../src/index.ts";
import { startGateway, testBinding } from "./support.ts";

const PASSWORD = "conformance-pw";
/** Per test: a hang fails the test instead of the whole run. */
const T = { timeout: 30_000 };
const MiB = 1024 * 1024;
const MODES = ["transaction", "session"] as const;
type Mode = (typeof MODES)[number];
/** The binding (client database name) per pool mode: pool of 2 (session: 6), and a pool of 1. */
const DB: Record<Mode, { shared: string; single: string }> = {
  transaction: { shared: "tx", single: "tx1" },
  session: { shared: "sess", single: "sess1" },
};

let origin: TestPostgres;
let gateway: Gateway;
let port: number;

before(async () => {
  origin = await startTestPostgres();
  const timeouts = { queryWaitMs: 10_000 };
  ({ gateway, port } = await startGateway([
    testBinding(origin, { password: PASSWORD, database: "tx", poolSize: 2, timeouts }),
    testBinding(origin, { password: PASSWORD, database: "tx1", poolSize: 1, timeouts }),
    // A short wait, for the tests that expect a client to be starved: they fail fast instead of hanging.
    testBinding(origin, {
      password: PASSWORD,
      database: "tx1fast",
      poolSize: 1,
      timeouts: { queryWaitMs: 1_500 },
    }),
    {
      ...testBinding(origin, { password: PASSWORD, database: "sess", poolSize: 6, timeouts }),
      poolMode: "session",
    },
    {
      ...testBinding(origin, { password: PASSWORD, database: "sess1", poolSize: 1, timeouts }),
      poolMode: "session",
    },
  ]));
  const setup = await connected("tx");
  await setup.query(
    "create function conf_notice(v int) returns int language plpgsql as $$ begin raise notice 'conf notice %', v; return v; end $$",
  );
});

afterAll(async () => {
  await gateway?.close(500);
  await origin?.stop();
});

/** Everything a test opened, closed after it whatever happened. */
const opened: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(
    opened.splice(0).map((close) => within(3_000, "closing a client", close()).catch(() => {})),
  );
});

/** `promise`, or a rejection naming `what` once `ms` passed: a hang fails fast and says where. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function pgClient(database: string): pg.Client {
  const c = new pg.Client({ host: "127.0.0.1", port, user: "app", password: PASSWORD, database });
  c.on("error", () => {});
  opened.push(() => c.end());
  return c;
}

async function connected(database: string): Promise<pg.Client> {
  const c = pgClient(database);
  await c.connect();
  return c;
}

/** A postgres.js instance (default: one connection, default prepared mode). */
function pjs(database: string, options: postgres.Options<Record<string, never>> = {}) {
  const sql = postgres({
    host: "127.0.0.1",
    port,
    user: "app",
    password: PASSWORD,
    database,
    max: 1,
    onnotice: () => {},
    ...options,
  });
  opened.push(() => sql.end({ timeout: 1 }));
  return sql;
}

/** For assert.rejects: the error carries SQLSTATE `code` (and a message matching `message`). */
function sqlState(code: string, message?: RegExp) {
  return (error: unknown) => {
    const e = error as { code?: string; message?: string };
    assert.equal(e.code, code, `expected SQLSTATE ${code}, got ${e.code}: ${e.message}`);
    if (message) assert.match(e.message ?? "", message);
    return true;
  };
}

const md5 = (data: string | Buffer) => createHash("md5").update(data).digest("hex");
const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

/** COPY text format lines `i<TAB>md5(i)` for i in 1..n, as PostgreSQL prints them. */
function copyLines(n: number, from = 1): string[] {
  const lines: string[] = [];
  for (let i = from; i < from + n; i++) lines.push(`${i}\t${md5(String(i))}\n`);
  return lines;
}

/** Groups lines into CopyData-sized buffers. */
function* chunked(lines: string[], perChunk = 2_000): Generator<Buffer> {
  for (let i = 0; i < lines.length; i += perChunk) yield Buffer.from(lines.slice(i, i + perChunk).join(""));
}

/** What pg's Connection offers for COPY (not in @types/pg). */
interface CopyConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(message: string): void;
}

/**
 * COPY through pg without pg-copy-streams: a Submittable that sends `text` as a simple query, streams
 * `input` on CopyInResponse (then CopyDone, or CopyFail with `fail`), and collects CopyData of COPY TO STDOUT.
 * `afterFirstChunk` delays the rest of the input, to model a client still streaming when the server fails.
 */
class PgCopy implements pg.Submittable {
  readonly done: Promise<{ command: string; data: Buffer }>;
  readonly #text: string;
  readonly #input: Buffer[];
  readonly #options: { fail?: string; afterFirstChunkMs?: number };
  readonly #chunks: Buffer[] = [];
  #command = "";
  #settle:
    | { resolve: (v: { command: string; data: Buffer }) => void; reject: (e: Error) => void }
    | undefined;

  constructor(
    text: string,
    input: Iterable<Buffer> = [],
    options: { fail?: string; afterFirstChunkMs?: number } = {},
  ) {
    this.#text = text;
    this.#input = [...input];
    this.#options = options;
    this.done = new Promise((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
  }

  submit(connection: pg.Connection): void {
    (connection as unknown as CopyConnection).query(this.#text);
  }

  async handleCopyInResponse(connection: pg.Connection): Promise<void> {
    const con = connection as unknown as CopyConnection;
    const [first, ...rest] = this.#input;
    if (first) con.sendCopyFromChunk(first);
    if (this.#options.afterFirstChunkMs) await sleep(this.#options.afterFirstChunkMs);
    for (const chunk of rest) con.sendCopyFromChunk(chunk);
    if (this.#options.fail) con.sendCopyFail(this.#options.fail);
    else con.endCopyFrom();
  }

  handleCopyData(message: { chunk: Buffer }): void {
    // pg-protocol hands out a view of its read buffer, reused for later messages: copy it.
    this.#chunks.push(Buffer.from(message.chunk));
  }

  handleCommandComplete(message: { text: string }): void {
    this.#command = message.text;
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}

  handleError(error: Error): void {
    this.#settle?.reject(error);
  }

  handleReadyForQuery(): void {
    this.#settle?.resolve({ command: this.#command, data: Buffer.concat(this.#chunks) });
  }
}

/** Runs a PgCopy on `client` and waits for its end. */
function copy(
  client: pg.Client,
  text: string,
  input?: Iterable<Buffer>,
  options?: { fail?: string; afterFirstChunkMs?: number },
) {
  return client.query(new PgCopy(text, input, options)).done;
}

/** count, sum(i) and md5 of the `s` column in order: a checksum of a (i int, s text) table. */
async function tableChecksum(client: pg.Client, table: string) {
  const { rows } = await client.query(
    `select count(*)::int as n, coalesce(sum(i), 0)::bigint::text as sum, md5(coalesce(string_agg(s, ',' order by i), '')) as digest from ${table}`,
  );
  return rows[0] as { n: number; sum: string; digest: string };
}

function expectedChecksum(n: number) {
  const hashes: string[] = [];
  for (let i = 1; i <= n; i++) hashes.push(md5(String(i)));
  return { n, sum: String((n * (n + 1)) / 2), digest: md5(hashes.join(",")) };
}

for (const mode of MODES) {
  const db = DB[mode];
  const suffix = mode === "transaction" ? "tx" : "sess";

  describe(`${mode} mode`, () => {
    describe("COPY", () => {
      it(
        "pg: COPY FROM STDIN of 100k rows, then COPY TO STDOUT of them, checksummed both ways",
        T,
        async () => {
          const table = `conf_copy_pg_${suffix}`;
          const c = await connected(db.shared);
          await c.query(`create table ${table} (i int, s text)`);
          try {
            const lines = copyLines(100_000);
            const { command } = await copy(c, `copy ${table} (i, s) from stdin`, chunked(lines));
            assert.equal(command, "COPY 100000");
            assert.deepEqual(await tableChecksum(c, table), expectedChecksum(100_000));
            const out = await copy(c, `copy (select i, s from ${table} order by i) to stdout`);
            assert.equal(out.command, "COPY 100000");
            assert.equal(out.data.length, Buffer.byteLength(lines.join("")));
            assert.equal(sha256(out.data), sha256(lines.join("")));
            // The connection is in a clean state afterwards, in and out of a transaction.
            await c.query("begin");
            await copy(c, `copy ${table} (i, s) from stdin`, chunked(copyLines(10, 100_001)));
            assert.equal((await c.query(`select count(*)::int as n from ${table}`)).rows[0].n, 100_010);
            await c.query("rollback");
            assert.equal((await c.query(`select count(*)::int as n from ${table}`)).rows[0].n, 100_000);
          } finally {
            await c.query(`drop table ${table}`);
          }
        },
      );

      it(
        "pg: a CopyFail from the client aborts the COPY with 57014, and the connection goes on",
        T,
        async () => {
          const table = `conf_copyfail_${suffix}`;
          const c = await connected(db.single);
          await c.query(`create table ${table} (i int, s text)`);
          try {
            await assert.rejects(
              copy(c, `copy ${table} (i, s) from stdin`, chunked(copyLines(1_000)), {
                fail: "the client gave up",
              }),
              sqlState("57014", /the client gave up/),
            );
            // Bad data fails the COPY server-side (22P02) and nothing is inserted.
            await assert.rejects(
              copy(c, `copy ${table} (i, s) from stdin`, [Buffer.from("1\tok\nnot-a-number\tbad\n")]),
              sqlState("22P02"),
            );
            assert.deepEqual((await c.query(`select count(*)::int as n from ${table}`)).rows, [{ n: 0 }]);
            const other = await connected(mode === "transaction" ? db.single : db.shared);
            assert.deepEqual((await other.query("select 1 as ok")).rows, [{ ok: 1 }]);
          } finally {
            await c.query(`drop table ${table}`);
          }
        },
      );

      it("postgres.js: COPY streams in (100k rows) and out (100k rows), checksummed", T, async () => {
        const table = `conf_copy_pjs_${suffix}`;
        const sql = pjs(db.shared);
        await sql.unsafe(`create table ${table} (i int, s text)`);
        try {
          const lines = copyLines(100_000);
          const writable = await sql.unsafe(`copy ${table} (i, s) from stdin`).writable();
          await pipeline(Readable.from(chunked(lines, 500)), writable);
          const [check] = await sql.unsafe(
            `select count(*)::int as n, sum(i)::bigint::text as sum, md5(string_agg(s, ',' order by i)) as digest from ${table}`,
          );
          assert.deepEqual({ ...check }, expectedChecksum(100_000));
          // And inside sql.begin, rolled back by a throw.
          await assert.rejects(
            sql.begin(async (tx) => {
              const w = await tx.unsafe(`copy ${table} (i, s) from stdin`).writable();
              await pipeline(Readable.from(chunked(copyLines(100, 100_001))), w);
              const [{ n }] = (await tx.unsafe(`select count(*)::int as n from ${table}`)) as unknown as [
                { n: number },
              ];
              assert.equal(n, 100_100);
              throw new Error("roll it back");
            }),
            /roll it back/,
          );
          const [{ n }] = (await sql.unsafe(`select count(*)::int as n from ${table}`)) as unknown as [
            { n: number },
          ];
          assert.equal(n, 100_000);
          // COPY TO last, on a connection of its own: postgres.js 3.4.9 leaves its socket paused when the
          // stream pushed back and CopyDone came in the same chunk, so that connection hangs afterwards
          // (porsager/postgres#499, fix proposed in PR #1016), with or without the gateway.
          const reader = pjs(db.shared);
          const readable = await reader
            .unsafe(`copy (select i, s from ${table} order by i) to stdout`)
            .readable();
          const hash = createHash("sha256");
          let bytes = 0;
          for await (const chunk of readable) {
            hash.update(chunk as Buffer);
            bytes += (chunk as Buffer).length;
          }
          assert.equal(bytes, Buffer.byteLength(lines.join("")));
          assert.equal(hash.digest("hex"), sha256(lines.join("")));
          await reader.end({ timeout: 0 });
        } finally {
          await sql.unsafe(`drop table ${table}`);
        }
      });
    });

    describe("large rows", () => {
      // The full set in transaction mode; session mode moves the same bytes, so it gets the text only
      // (pg's client-side bytea decoding alone takes seconds).
      const full = mode === "transaction";

      it(
        `pg: a 16 MiB text round-trips both ways${full ? ", a 16 MiB bytea uploads" : ""}, and a 200k-row result arrives whole`,
        T,
        async () => {
          const c = await connected(db.shared);
          const text = randomBytes(12 * MiB).toString("base64"); // exactly 16 MiB of text
          const echoed = await c.query("select length($1::text) as n, md5($1::text) as m, $1::text as t", [
            text,
          ]);
          const { n, m, t } = echoed.rows[0];
          assert.deepEqual({ n, m }, { n: 16 * MiB, m: md5(text) }, "the server received the text intact");
          assert.ok(t === text, "the 16 MiB text came back intact");
          if (full) {
            // Upload only, checked server-side: the download of a 16 MiB bytea is the postgres.js test's
            // (pg's client-side hex decoding of it alone costs seconds of CPU).
            const bytes = randomBytes(16 * MiB);
            const { rows } = await c.query("select length($1::bytea) as n, md5($1::bytea) as m", [bytes]);
            assert.deepEqual(rows[0], { n: 16 * MiB, m: md5(bytes) }, "the server received the bytea intact");
          }
          // A large value produced by the server, through the simple protocol.
          const big = await c.query("select repeat('ab', 8 * 1024 * 1024) as v, 'after' as tail");
          assert.equal(big.rows[0].v.length, 16 * MiB);
          assert.equal(md5(big.rows[0].v), md5("ab".repeat(8 * MiB)));
          assert.equal(big.rows[0].tail, "after");
          const many = await c.query("select i, md5(i::text) as m from generate_series(1, 200000) i");
          assert.equal(many.rows.length, 200_000);
          let sum = 0;
          const hashes: string[] = [];
          for (const r of many.rows) {
            sum += r.i;
            hashes.push(r.m);
          }
          assert.equal(sum, (200_000 * 200_001) / 2);
          assert.equal(md5(hashes.join(",")), expectedChecksum(200_000).digest);
          assert.deepEqual((await c.query("select 1 as ok")).rows, [{ ok: 1 }]);
        },
      );

      if (full) {
        it("postgres.js: a 16 MiB bytea round-trips, and a 200k-row result arrives whole", T, async () => {
          const sql = pjs(db.shared);
          const bytes = randomBytes(16 * MiB);
          // Once: postgres.js sends bytea as hex text, so each 16 MiB value is a 32 MiB parameter (the gateway's
          // default maxClientMessage is 64 MiB).
          const [row] = await sql`select b, md5(b) as m from (select ${bytes}::bytea as b) s`;
          assert.equal(row?.m, md5(bytes));
          const back = row?.b as unknown;
          assert.ok(Buffer.isBuffer(back) && back.equals(bytes));
          const rows = await sql`select i, md5(i::text) as m from generate_series(1, ${200_000}::int) i`;
          assert.equal(rows.length, 200_000);
          assert.equal(md5(rows.map((r) => r.m).join(",")), expectedChecksum(200_000).digest);
        });
      }
    });

    describe("notices", () => {
      it(
        "pg: RAISE NOTICE/WARNING reach the notice event, in and out of a transaction, simple and extended",
        T,
        async () => {
          const c = await connected(db.shared);
          const notices: string[] = [];
          c.on("notice", (n) => notices.push(`${n.severity}:${n.message}`));
          await c.query("do $$ begin raise notice 'simple %', 1; raise warning 'careful'; end $$");
          assert.deepEqual(notices.splice(0), ["NOTICE:simple 1", "WARNING:careful"]);
          await c.query("begin");
          assert.deepEqual((await c.query("select conf_notice($1) as v", [7])).rows, [{ v: 7 }]);
          assert.deepEqual(
            notices.splice(0),
            ["NOTICE:conf notice 7"],
            "extended protocol, in a transaction",
          );
          await c.query("do $$ begin raise notice 'in tx'; end $$");
          await c.query("commit");
          assert.deepEqual(notices.splice(0), ["NOTICE:in tx"]);
          await c.query({ name: "noticer", text: "select conf_notice($1) as v", values: [8] });
          await c.query({ name: "noticer", text: "select conf_notice($1) as v", values: [9] });
          assert.deepEqual(notices.splice(0), ["NOTICE:conf notice 8", "NOTICE:conf notice 9"]);
        },
      );

      it("postgres.js: onnotice gets notices, including inside sql.begin", T, async () => {
        const notices: string[] = [];
        const sql = pjs(db.shared, { onnotice: (n) => notices.push(String(n.message)) });
        await sql`select conf_notice(${1}::int)`;
        const v = await sql.begin(async (tx) => {
          await tx`select conf_notice(${2}::int)`;
          await tx.unsafe("do $$ begin raise notice 'begin block'; end $$");
          const [r] = await tx`select conf_notice(${3}::int) as v`;
          return r?.v;
        });
        assert.equal(v, 3);
        assert.deepEqual(notices, ["conf notice 1", "conf notice 2", "begin block", "conf notice 3"]);
      });
    });

    describe("errors mid-transaction", () => {
      it(
        "pg: a failing statement gives 25P02 until ROLLBACK, then the same server serves another client cleanly",
        T,
        async () => {
          const a = await connected(db.single);
          const b = await connected(db.single);
          await a.query("begin");
          const pid = (await a.query("select pg_backend_pid() as pid")).rows[0].pid as number;
          await assert.rejects(a.query("select 1/0"), sqlState("22012"));
          await assert.rejects(a.query("select 1"), sqlState("25P02", /current transaction is aborted/));
          // The extended protocol inside the failed transaction, with a named statement.
          await assert.rejects(
            a.query({ name: "conf_after_fail", text: "select $1::int as v", values: [1] }),
            sqlState("25P02"),
          );
          await a.query("rollback");
          assert.deepEqual(
            (await a.query({ name: "conf_after_fail", text: "select $1::int as v", values: [2] })).rows,
            [{ v: 2 }],
          );
          if (mode === "session") await a.end(); // b waits for the one server connection of sess1
          // b gets the very same server connection (pool of 1), outside any transaction.
          const { rows } = await b.query(
            "select pg_backend_pid() as pid, now() = statement_timestamp() as fresh, pg_current_xact_id_if_assigned() is null as no_xid",
          );
          assert.deepEqual(rows, [{ pid, fresh: true, no_xid: true }]);
        },
      );

      it("pg: an error in the extended protocol inside a transaction fails it the same way", T, async () => {
        const a = await connected(db.single);
        await a.query("begin");
        await assert.rejects(
          a.query({ name: "conf_div", text: "select 1/$1::int as x", values: [0] }),
          sqlState("22012"),
        );
        await assert.rejects(
          a.query({ name: "conf_div", text: "select 1/$1::int as x", values: [1] }),
          sqlState("25P02"),
        );
        await a.query("rollback");
        assert.deepEqual(
          (await a.query({ name: "conf_div", text: "select 1/$1::int as x", values: [1] })).rows,
          [{ x: 1 }],
        );
      });

      it(
        "postgres.js: sql.begin that fails rolls back, and the connection (and the server) serve on",
        T,
        async () => {
          const sql = pjs(db.single);
          const table = `conf_err_pjs_${suffix}`;
          await sql.unsafe(`create table ${table} (v int)`);
          try {
            await assert.rejects(
              sql.begin(async (tx) => {
                await tx.unsafe(`insert into ${table} values (1)`);
                await tx`select 1/${0}::int`;
              }),
              sqlState("22012"),
            );
            const [{ n }] = (await sql.unsafe(`select count(*)::int as n from ${table}`)) as unknown as [
              { n: number },
            ];
            assert.equal(n, 0);
            const [row] = await sql`select ${5}::int as v`;
            assert.equal(row?.v, 5);
          } finally {
            await sql.unsafe(`drop table ${table}`);
          }
        },
      );
    });

    describe("cancel", () => {
      it(
        "pg: a CancelRequest stops pg_sleep with 57014; a client on another server is unaffected",
        T,
        async () => {
          const a = await connected(db.shared);
          const b = await connected(db.shared);
          await a.query("begin");
          const pidA = (await a.query("select pg_backend_pid() as pid")).rows[0].pid;
          // b is inside its own transaction on the other server, sleeping past the cancel.
          await b.query("begin");
          const pidB = (await b.query("select pg_backend_pid() as pid")).rows[0].pid;
          assert.notEqual(pidA, pidB);
          const bSleep = b.query("select pg_sleep(0.8), 'b finished' as v");
          const sleeper = new pg.Query("select pg_sleep(20)");
          const cancelled = new Promise<Error>((resolve, reject) => {
            sleeper.on("error", resolve);
            sleeper.on("end", () => reject(new Error("pg_sleep(20) was not cancelled")));
          });
          const started = Date.now();
          a.query(sleeper);
          await sleep(300);
          const canceller = new pg.Client({
            host: "127.0.0.1",
            port,
            user: "app",
            password: PASSWORD,
            database: db.shared,
          });
          (canceller as unknown as { cancel(client: pg.Client, query: pg.Query): void }).cancel(a, sleeper);
          const error = await cancelled;
          assert.ok(sqlState("57014", /canceling statement due to user request/)(error));
          assert.ok(Date.now() - started < 5_000);
          await assert.rejects(a.query("select 1"), sqlState("25P02"));
          await a.query("rollback");
          assert.deepEqual((await a.query("select 2 as two")).rows, [{ two: 2 }]);
          assert.equal((await bSleep).rows[0].v, "b finished");
          assert.equal((await b.query("select pg_backend_pid() as pid")).rows[0].pid, pidB);
          await b.query("commit");
        },
      );

      it(
        "postgres.js: query.cancel() stops pg_sleep with 57014; another client's query finishes",
        T,
        async () => {
          const sqlA = pjs(db.shared);
          const sqlB = pjs(db.shared);
          await sqlA`select 1`;
          await sqlB`select 1`;
          const other = sqlB.begin(async (tx) => {
            const [{ pid }] = (await tx`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
            await tx`select pg_sleep(0.7)`;
            const [{ v }] = (await tx`select ${"still here"}::text as v`) as unknown as [{ v: string }];
            return { pid, v };
          });
          await sleep(50);
          const query = sqlA`select pg_sleep(20), pg_backend_pid() as pid`;
          const started = Date.now();
          setTimeout(() => void query.cancel(), 300);
          await assert.rejects(query, sqlState("57014"));
          assert.ok(Date.now() - started < 5_000);
          const result = await other;
          assert.equal(result.v, "still here");
          const [row] = await sqlA`select ${3}::int as v`;
          assert.equal(row?.v, 3);
        },
      );
    });

    describe("postgres.js transactions and cursors", () => {
      it("sql.begin with savepoints: a failed savepoint is rolled back, the rest commits", T, async () => {
        const sql = pjs(db.shared);
        const table = `conf_sp_${suffix}`;
        await sql.unsafe(`create table ${table} (v int)`);
        try {
          const inside = await sql.begin(async (tx) => {
            await tx`insert into ${tx(table)} values (${1})`;
            await assert.rejects(
              tx.savepoint(async (sp) => {
                await sp`insert into ${sp(table)} values (${2})`;
                await sp`select 1/${0}::int`;
              }),
              sqlState("22012"),
            );
            await tx.savepoint(async (sp) => {
              await sp`insert into ${sp(table)} values (${3})`;
            });
            await assert.rejects(
              tx.savepoint("named", async (sp) => {
                await sp`insert into ${sp(table)} values (${4})`;
                throw new Error("undo 4");
              }),
              /undo 4/,
            );
            const [r] = await tx`select array_agg(v order by v) as vs from ${tx(table)}`;
            return r?.vs;
          });
          assert.deepEqual(inside, [1, 3]);
          const [after] = await sql`select array_agg(v order by v) as vs from ${sql(table)}`;
          assert.deepEqual(after?.vs, [1, 3]);
          // A transaction that throws leaves nothing behind.
          await assert.rejects(
            sql.begin(async (tx) => {
              await tx`insert into ${tx(table)} values (${5})`;
              throw new Error("abandon");
            }),
            /abandon/,
          );
          const [again] = await sql`select count(*)::int as n from ${sql(table)}`;
          assert.equal(again?.n, 2);
        } finally {
          await sql.unsafe(`drop table ${table}`);
        }
      });

      it(
        "cursors: 10000 rows in batches of 100, outside and inside a transaction, with and without parameters",
        T,
        async () => {
          const sql = pjs(db.shared);
          const consume = async (cursor: AsyncIterable<postgres.Row[]>) => {
            let batches = 0;
            let count = 0;
            let sum = 0;
            for await (const rows of cursor) {
              batches++;
              count += rows.length;
              for (const r of rows) sum += r.i as number;
            }
            return { batches, count, sum };
          };
          const expected = { batches: 100, count: 10_000, sum: 50_005_000 };
          assert.deepEqual(await consume(sql`select generate_series(1, 10000) as i`.cursor(100)), expected);
          assert.deepEqual(
            await consume(sql`select generate_series(1, ${10_000}::int) as i`.cursor(100)),
            expected,
            "with a parameter (Parse/Describe/Flush first)",
          );
          const inTx = await sql.begin(async (tx) => {
            const r = await consume(tx`select generate_series(1, 10000) as i`.cursor(100));
            const [after] = await tx`select ${1}::int as one`;
            return { ...r, one: after?.one };
          });
          assert.deepEqual(inTx, { ...expected, one: 1 });
          // Leaving a cursor early closes its portal; the connection goes on.
          let seen = 0;
          for await (const rows of sql`select generate_series(1, 10000) as i`.cursor(100)) {
            seen += rows.length;
            if (seen >= 300) break;
          }
          assert.equal(seen, 300);
          const [row] = await sql`select ${"after break"}::text as v`;
          assert.equal(row?.v, "after break");
        },
      );

      it("cursors of more clients than servers, consumed slowly, all get their rows", T, async () => {
        const clients = [0, 1, 2, 3].map(() => pjs(db.shared));
        const results = await Promise.all(
          clients.map(async (sql, k) => {
            let sum = 0;
            let count = 0;
            for await (const rows of sql`select i, ${k}::int as k from generate_series(1, 2000) i`.cursor(
              250,
            )) {
              for (const r of rows) {
                assert.equal(r.k, k);
                sum += r.i as number;
              }
              count += rows.length;
              await sleep(5);
            }
            return { count, sum };
          }),
        );
        assert.deepEqual(
          results,
          clients.map(() => ({ count: 2000, sum: 2_001_000 })),
        );
      });
    });
  });
}

describe("transaction mode only", () => {
  it("postgres.js default prepared mode: 8 clients over a pool of 2, 200 queries each over 40 distinct statements", {
    ...T,
  }, async () => {
    const clients = Array.from({ length: 8 }, () => pjs("tx"));
    const perClient = await within(
      6_000,
      "1600 prepared queries",
      Promise.all(
        clients.map(async (sql, c) => {
          let correct = 0;
          for (let batch = 0; batch < 20; batch++) {
            // 10 at once: postgres.js pipelines them on its one connection.
            const results = await Promise.all(
              Array.from({ length: 10 }, async (_, j) => {
                const k = (c * 7 + batch * 3 + j) % 40;
                const v = c * 1000 + batch * 10 + j;
                const rows = await sql.unsafe(
                  `select $1::int * ${k} + ${k} as n, ${k}::int as k, $2::text as tag`,
                  [v, `c${c}`],
                  {
                    prepare: true,
                  },
                );
                return rows[0]?.n === v * k + k && rows[0]?.k === k && rows[0]?.tag === `c${c}`;
              }),
            );
            correct += results.filter(Boolean).length;
          }
          return correct;
        }),
      ),
    );
    assert.deepEqual(perClient, Array(8).fill(200));
    const stats = gateway.bindings.get("tx")?.pool.stats;
    assert.ok(stats && stats.active + stats.idle <= 2, "never more than 2 server connections");
  });

  it("postgres.js: a new statement's Parse/Describe/Flush pipelined behind another query's Sync is answered", {
    ...T,
  }, async () => {
    const sql = pjs("tx");
    await sql`select ${0}::int as a`;
    for (let i = 1; i <= 300; i++) {
      // The first is prepared already (Bind/Execute/Sync); the second is new (Parse/Describe/Flush,
      // no Sync until its description is back). postgres.js writes both in one go.
      const [[a], [b]] = await within(
        2_000,
        `pipelined pair ${i}`,
        Promise.all([
          sql`select ${i}::int as a`,
          sql.unsafe(`select $1::int as b${i}`, [i], { prepare: true }),
        ]),
      );
      assert.equal(a?.a, i);
      assert.equal(b?.[`b${i}`], i);
    }
  });

  it(
    "pg: one named statement reused 1000 times per client by 3 clients over a pool of 2, switching servers",
    T,
    async () => {
      const clients = await Promise.all([0, 1, 2].map(() => connected("tx")));
      const runs = await Promise.all(
        clients.map(async (c, k) => {
          const pids: number[] = [];
          let wrong = 0;
          for (let i = 0; i < 1000; i++) {
            const { rows } = await c.query({
              name: "conf_reused",
              text: "select $1::int * 3 as n, $2::text as who, pg_backend_pid() as pid",
              values: [i, `client${k}`],
            });
            if (rows[0].n !== i * 3 || rows[0].who !== `client${k}`) wrong++;
            pids.push(rows[0].pid);
          }
          let switches = 0;
          for (let i = 1; i < pids.length; i++) if (pids[i] !== pids[i - 1]) switches++;
          return { wrong, servers: new Set(pids).size, switches };
        }),
      );
      for (const run of runs) {
        assert.equal(run.wrong, 0);
        assert.equal(run.servers, 2, "each client used both server connections");
        assert.ok(run.switches >= 10, `only ${run.switches} server switches`);
      }
    },
  );

  it("pg: LISTEN is refused with 0A000, also inside a transaction (which it fails)", T, async () => {
    const c = await connected("tx");
    await assert.rejects(c.query("LISTEN conf_channel"), sqlState("0A000", /LISTEN is not supported/));
    await c.query("begin");
    await assert.rejects(c.query("listen conf_channel"), sqlState("0A000"));
    await assert.rejects(c.query("select 1"), sqlState("25P02"));
    await c.query("rollback");
    assert.deepEqual((await c.query("select 1 as ok")).rows, [{ ok: 1 }]);
  });

  it(
    "postgres.js: sql.listen (LISTEN through the extended protocol) is refused with 0A000 too",
    T,
    async () => {
      const sql = pjs("tx");
      await assert.rejects(
        sql.listen("conf_pjs_channel", () => {}),
        sqlState("0A000", /LISTEN is not supported/),
      );
      const [row] = await sql`select ${1}::int as ok`;
      assert.equal(row?.ok, 1);
    },
  );

  it("a client's DEALLOCATE ALL / DISCARD ALL does not break other clients' named statements on that server", {
    ...T,
  }, async () => {
    const a = await connected("tx1");
    const b = await connected("tx1");
    const named = { name: "conf_survivor", text: "select $1::int + 1 as n" };
    assert.deepEqual((await a.query({ ...named, values: [1] })).rows, [{ n: 2 }]);
    await b.query("DEALLOCATE ALL");
    assert.deepEqual((await a.query({ ...named, values: [2] })).rows, [{ n: 3 }]);
    await b.query("DISCARD ALL");
    assert.deepEqual((await a.query({ ...named, values: [3] })).rows, [{ n: 4 }]);
  });

  it("CopyData a client still sends after the server failed its COPY does not pin the server connection", {
    ...T,
  }, async () => {
    const table = "conf_copy_pin";
    const a = await connected("tx1fast");
    await a.query(`create table ${table} (i int, s text)`);
    try {
      // The first chunk is bad; the rest (and CopyDone) follow 300 ms later, as a client streaming a big file would.
      await assert.rejects(
        copy(
          a,
          `copy ${table} (i, s) from stdin`,
          [Buffer.from("bad\trow\n"), ...chunked(copyLines(1_000))],
          {
            afterFirstChunkMs: 300,
          },
        ),
        sqlState("22P02"),
      );
      await sleep(500); // a has sent its stray CopyData and CopyDone, and now sits idle
      const b = await connected("tx1fast");
      assert.deepEqual((await b.query("select 1 as ok")).rows, [{ ok: 1 }], "b is not starved by idle a");
    } finally {
      await a.query(`drop table ${table}`).catch(() => {});
    }
  });
});

describe("session mode only", () => {
  it("LISTEN works and NOTIFY is delivered (pg and postgres.js)", T, async () => {
    const listener = await connected("sess");
    const received: string[] = [];
    listener.on("notification", (n) => received.push(`${n.channel}:${n.payload}`));
    await listener.query("LISTEN conf_channel");
    const sql = pjs("sess");
    const pjsReceived: string[] = [];
    await sql.listen("conf_pjs_channel", (payload) => pjsReceived.push(payload));
    // Notified from a transaction-mode client: another server connection entirely.
    const notifier = await connected("tx");
    await notifier.query("NOTIFY conf_channel, 'hello'");
    await notifier.query("select pg_notify('conf_channel', $1)", ["second"]);
    await notifier.query("select pg_notify('conf_pjs_channel', 'to postgres.js')");
    const deadline = Date.now() + 3_000;
    while ((received.length < 2 || pjsReceived.length < 1) && Date.now() < deadline) await sleep(20);
    assert.deepEqual(received, ["conf_channel:hello", "conf_channel:second"]);
    assert.deepEqual(pjsReceived, ["to postgres.js"]);
    // The listening client still runs queries normally.
    assert.deepEqual((await listener.query("select 1 as ok")).rows, [{ ok: 1 }]);
  });

  it("session state (SET, temp tables, named statements) lasts for the client's session", T, async () => {
    const c = await connected("sess");
    await c.query("set application_name = 'conf-session'");
    await c.query("create temporary table conf_temp (v int)");
    await c.query("insert into conf_temp values (1), (2)");
    await c.query({ name: "conf_sess_stmt", text: "select sum(v)::int as s from conf_temp" });
    const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid;
    for (let i = 0; i < 3; i++) {
      const { rows } = await c.query({
        name: "conf_sess_stmt",
        text: "select sum(v)::int as s from conf_temp",
      });
      assert.deepEqual(rows, [{ s: 3 }]);
    }
    const { rows } = await c.query(
      "select current_setting('application_name') as app, pg_backend_pid() as pid",
    );
    assert.deepEqual(rows, [{ app: "conf-session", pid }]);
  });

  it("the next session on the same server connection inherits none of the previous session's state", {
    ...T,
  }, async () => {
    const a = await connected("sess1");
    await a.query("set statement_timeout = '123s'");
    await a.query("create temporary table conf_leak (v int)");
    await a.query({ name: "conf_leak_stmt", text: "select 1 as one" });
    const pid = (await a.query("select pg_backend_pid() as pid")).rows[0].pid;
    await a.end();
    const b = await connected("sess1");
    const { rows } = await b.query(
      "select pg_backend_pid() as pid, current_setting('statement_timeout') as timeout, to_regclass('pg_temp.conf_leak') is null as no_temp",
    );
    assert.equal(rows[0].pid, pid, "same server connection (pool of 1)");
    assert.deepEqual({ timeout: rows[0].timeout, no_temp: rows[0].no_temp }, { timeout: "0", no_temp: true });
    // pg in another process preparing the same name must not collide (42P05).
    assert.deepEqual((await b.query({ name: "conf_leak_stmt", text: "select 1 as one" })).rows, [{ one: 1 }]);
  });
});
