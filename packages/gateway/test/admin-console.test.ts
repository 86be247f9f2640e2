import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  BackendMessage,
  type ErrorFields,
  MessageFramer,
  parseCommandComplete,
  parseDataRow,
  parseErrorResponse,
  parseNoticeResponse,
  parseReadyForQuery,
  parseRowDescription,
  TransactionStatus,
} from "@pgbind/protocol";
import { ADMIN_COMMANDS, AdminConsole } from "../src/admin-console.ts";
import { DEFAULT_TIMEOUTS } from "../src/config.ts";
import type { PoolStats } from "../src/pool.ts";
import type { BindingView, ClientView, GatewayView } from "../src/view.ts";

const T0 = Date.UTC(2025, 0, 2, 3, 4, 5);
const pool = (o: Partial<PoolStats> = {}): PoolStats => ({
  active: 0,
  idle: 0,
  connecting: 0,
  waiting: 0,
  maxWaitMs: 0,
  paused: false,
  ...o,
});
const client = (processId: number, state: ClientView["state"], serverId?: number): ClientView => ({
  processId,
  user: "app",
  database: "orders",
  state,
  address: `10.0.0.${processId - 100}:50000`,
  connectedAt: T0,
  serverId,
});

/** Two bindings, three clients (one waiting), one server; no password anywhere. */
function fakeView() {
  let bindings: BindingView[] = [
    {
      id: "orders",
      database: "orders",
      poolMode: "transaction",
      poolSize: 20,
      timeouts: { ...DEFAULT_TIMEOUTS, queryWaitMs: 5_000 },
      origin: {
        host: "db.internal",
        port: 5432,
        database: "orders_prod",
        user: "owner",
        sslmode: "verify-full",
      },
      pool: pool({ active: 1, idle: 2, connecting: 1, waiting: 1, maxWaitMs: 1500 }),
      clients: 3,
      transactions: 42,
      serverConnects: 4,
      serverConnectFailures: 1,
    },
    {
      id: "billing",
      database: "billing",
      poolMode: "session",
      poolSize: 5,
      timeouts: DEFAULT_TIMEOUTS,
      origin: { host: "::1", port: 5433, database: "billing", user: "biller", sslmode: "disable" },
      pool: pool(),
      clients: 0,
      transactions: 0,
      serverConnects: 0,
      serverConnectFailures: 0,
    },
  ];
  const state = { calls: [] as string[], reloadError: undefined as Error | undefined };
  const view: GatewayView & { paused: boolean } = {
    startedAt: T0,
    listen: { host: "127.0.0.1", port: 6432 },
    configSource: "/etc/pgbind/gateway.json",
    paused: false,
    loginTimeoutMs: 15_000,
    bindings: () => bindings,
    clients: () => [client(101, "active", 7), client(102, "idle"), client(103, "waiting")],
    servers: () => [
      {
        id: 7,
        database: "orders",
        state: "active",
        origin: "db.internal:5432",
        connectedAt: T0,
        preparedStatements: 3,
      },
    ],
    reload: async () => {
      state.calls.push("reload");
      if (state.reloadError) throw state.reloadError;
    },
    pause: () => {
      state.calls.push("pause");
      view.paused = true;
    },
    resume: () => {
      state.calls.push("resume");
      view.paused = false;
    },
  };
  const setBindings = (next: BindingView[]) => {
    bindings = next;
  };
  return { view, state, setBindings };
}

type Message =
  | { type: "rows"; columns: string[] }
  | { type: "row"; values: (string | null)[] }
  | { type: "complete"; tag: string }
  | { type: "error" | "notice"; fields: ErrorFields }
  | { type: "empty" }
  | { type: "ready"; status: number };

function parse(bytes: Buffer): Message[] {
  const out: Message[] = [];
  new MessageFramer().push(bytes, (frame) => {
    switch (frame.code) {
      case BackendMessage.RowDescription:
        return void out.push({ type: "rows", columns: parseRowDescription(frame).map((c) => c.name) });
      case BackendMessage.DataRow:
        return void out.push({ type: "row", values: parseDataRow(frame) });
      case BackendMessage.CommandComplete:
        return void out.push({ type: "complete", tag: parseCommandComplete(frame) });
      case BackendMessage.ErrorResponse:
        return void out.push({ type: "error", fields: parseErrorResponse(frame) });
      case BackendMessage.NoticeResponse:
        return void out.push({ type: "notice", fields: parseNoticeResponse(frame) });
      case BackendMessage.EmptyQueryResponse:
        return void out.push({ type: "empty" });
      case BackendMessage.ReadyForQuery:
        return void out.push({ type: "ready", status: parseReadyForQuery(frame) });
      default:
        throw new Error(`unexpected message ${String.fromCharCode(frame.code)}`);
    }
  });
  return out;
}

const READY: Message = { type: "ready", status: TransactionStatus.Idle };

/** Runs one query that must return a single result set; gives it as objects keyed by column. */
async function query(admin: AdminConsole, sql: string): Promise<Record<string, string | null>[]> {
  const messages = parse(await admin.handleQuery(sql));
  const [head, ...rest] = messages;
  assert.equal(head?.type, "rows", JSON.stringify(messages));
  assert.deepEqual(rest.slice(-2), [{ type: "complete", tag: "SHOW" }, READY]);
  const columns = (head as { columns: string[] }).columns;
  return rest.slice(0, -2).map((m) => {
    assert.equal(m.type, "row");
    const values = (m as { values: (string | null)[] }).values;
    assert.equal(values.length, columns.length);
    return Object.fromEntries(columns.map((c, i) => [c, values[i] ?? null]));
  });
}

describe("AdminConsole", () => {
  it("SHOW POOLS: one row per binding, PgBouncer-like columns", async () => {
    const rows = await query(new AdminConsole(fakeView().view), "SHOW POOLS");
    assert.deepEqual(rows, [
      {
        database: "orders",
        pool_mode: "transaction",
        pool_size: "20",
        cl_active: "2",
        cl_waiting: "1",
        sv_active: "1",
        sv_idle: "2",
        sv_connecting: "1",
        maxwait_ms: "1500",
        paused: "0",
      },
      {
        database: "billing",
        pool_mode: "session",
        pool_size: "5",
        cl_active: "0",
        cl_waiting: "0",
        sv_active: "0",
        sv_idle: "0",
        sv_connecting: "0",
        maxwait_ms: "0",
        paused: "0",
      },
    ]);
  });

  it("SHOW CLIENTS and SHOW SERVERS: a client without a server has a NULL server_id", async () => {
    const admin = new AdminConsole(fakeView().view);
    const clients = await query(admin, "SHOW CLIENTS");
    assert.deepEqual(clients[0], {
      pid: "101",
      user: "app",
      database: "orders",
      state: "active",
      addr: "10.0.0.1:50000",
      connect_time: "2025-01-02T03:04:05.000Z",
      server_id: "7",
    });
    assert.deepEqual(
      clients.map((c) => [c.state, c.server_id]),
      [
        ["active", "7"],
        ["idle", null],
        ["waiting", null],
      ],
    );
    assert.deepEqual(await query(admin, "SHOW SERVERS"), [
      {
        id: "7",
        database: "orders",
        state: "active",
        origin: "db.internal:5432",
        connect_time: "2025-01-02T03:04:05.000Z",
        prepared_statements: "3",
      },
    ]);
  });

  it("SHOW STATS and SHOW DATABASES", async () => {
    const admin = new AdminConsole(fakeView().view);
    assert.deepEqual((await query(admin, "SHOW STATS"))[0], {
      database: "orders",
      total_xact_count: "42",
      server_connects: "4",
      server_connect_failures: "1",
    });
    assert.deepEqual((await query(admin, "SHOW DATABASES"))[1], {
      id: "billing",
      database: "billing",
      host: "::1",
      port: "5433",
      origin_database: "billing",
      origin_user: "biller",
      sslmode: "disable",
      pool_size: "5",
      pool_mode: "session",
    });
  });

  it("SHOW CONFIG: listen, source, bindings and per-binding settings, no password key", async () => {
    const rows = await query(new AdminConsole(fakeView().view), "SHOW CONFIG");
    const config = Object.fromEntries(rows.map((r) => [r.key, r.value]));
    assert.equal(config.listen, "127.0.0.1:6432");
    assert.equal(config.config_source, "/etc/pgbind/gateway.json");
    assert.equal(config.bindings, "2");
    assert.equal(
      config["binding.orders.origin"],
      "db.internal:5432/orders_prod user=owner sslmode=verify-full",
    );
    assert.equal(config["binding.billing.origin"], "[::1]:5433/billing user=biller sslmode=disable");
    assert.equal(config["binding.orders.pool_size"], "20");
    assert.equal(config["binding.billing.pool_mode"], "session");
    assert.equal(config.login_timeout_ms, "15000");
    assert.equal(config["binding.orders.query_wait_timeout_ms"], "5000");
    assert.equal(config["binding.orders.connect_timeout_ms"], "30000");
    assert.equal(config["binding.billing.idle_client_timeout_ms"], "0");
    assert.equal(config["binding.billing.idle_server_timeout_ms"], "600000");
    assert.equal(config["binding.billing.server_lifetime_ms"], "3600000");
    for (const row of rows) assert.doesNotMatch(String(row.key), /password|secret/i);
  });

  it("SHOW VERSION and SHOW HELP", async () => {
    const admin = new AdminConsole(fakeView().view);
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    assert.deepEqual(await query(admin, "show version"), [{ version: `pgbind gateway ${pkg.version}` }]);
    const help = parse(await admin.handleQuery("SHOW HELP"));
    assert.equal(help.length, 3);
    assert.equal(help[0]?.type, "notice");
    const detail = (help[0] as { fields: ErrorFields }).fields.detail ?? "";
    for (const command of ADMIN_COMMANDS) assert.ok(detail.includes(command), command);
    assert.deepEqual(help.slice(1), [{ type: "complete", tag: "SHOW" }, READY]);
  });

  it("accepts any case, extra whitespace and a trailing semicolon", async () => {
    const admin = new AdminConsole(fakeView().view);
    for (const sql of ["show pools", "  Show\n\tPOOLS ;  ", "SHOW POOLS;"]) {
      assert.equal((await query(admin, sql)).length, 2, sql);
    }
  });

  it("an unknown command gets 42601 naming it and the valid ones, then ReadyForQuery", async () => {
    const messages = parse(await new AdminConsole(fakeView().view).handleQuery("SHOW LISTS"));
    assert.equal(messages.length, 2);
    const error = (messages[0] as { type: string; fields: ErrorFields }).fields;
    assert.equal(messages[0]?.type, "error");
    assert.equal(error.severity, "ERROR");
    assert.equal(error.code, "42601");
    assert.match(error.message, /"SHOW LISTS"/);
    assert.match(error.message, /SHOW POOLS, .*RESUME/);
    assert.deepEqual(messages[1], READY);
  });

  it("an empty query gets EmptyQueryResponse", async () => {
    const admin = new AdminConsole(fakeView().view);
    for (const sql of ["", "   ", " ; ;"]) {
      assert.deepEqual(parse(await admin.handleQuery(sql)), [{ type: "empty" }, READY], JSON.stringify(sql));
    }
  });

  it("runs several statements in order with one ReadyForQuery; an error skips the rest", async () => {
    const admin = new AdminConsole(fakeView().view);
    const both = parse(await admin.handleQuery("SHOW VERSION; show stats;"));
    assert.deepEqual(
      both.filter((m) => m.type === "rows" || m.type === "complete" || m.type === "ready"),
      [
        { type: "rows", columns: ["version"] },
        { type: "complete", tag: "SHOW" },
        {
          type: "rows",
          columns: ["database", "total_xact_count", "server_connects", "server_connect_failures"],
        },
        { type: "complete", tag: "SHOW" },
        READY,
      ],
    );
    const broken = parse(await admin.handleQuery("PAUSE; BOGUS; RESUME"));
    assert.deepEqual(
      broken.map((m) => (m.type === "complete" ? m.tag : m.type)),
      ["PAUSE", "error", "ready"],
    );
  });

  it("RELOAD, PAUSE and RESUME call the view and answer with their tag", async () => {
    const { view, state } = fakeView();
    const admin = new AdminConsole(view);
    assert.deepEqual(parse(await admin.handleQuery("PAUSE")), [{ type: "complete", tag: "PAUSE" }, READY]);
    assert.equal(view.paused, true);
    assert.equal((await query(admin, "SHOW POOLS"))[1]?.paused, "1");
    assert.deepEqual(parse(await admin.handleQuery("resume;")), [{ type: "complete", tag: "RESUME" }, READY]);
    assert.deepEqual(parse(await admin.handleQuery("Reload")), [{ type: "complete", tag: "RELOAD" }, READY]);
    assert.deepEqual(state.calls, ["pause", "resume", "reload"]);
  });

  it("a failed RELOAD is an ErrorResponse (F0000), not a thrown error", async () => {
    const { view, state } = fakeView();
    state.reloadError = new Error("gateway.json: bindings[0].poolSize: must be a positive integer");
    const messages = parse(await new AdminConsole(view).handleQuery("RELOAD"));
    assert.equal(messages[0]?.type, "error");
    const error = (messages[0] as { fields: ErrorFields }).fields;
    assert.equal(error.code, "F0000");
    assert.match(error.message, /RELOAD failed: .*poolSize/);
    assert.deepEqual(messages[1], READY);
  });

  it("no output ever contains a password, even if the view's origin carried one", async () => {
    const { view, setBindings } = fakeView();
    const admin = new AdminConsole(view);
    const all = ADMIN_COMMANDS.filter((c) => c !== "RELOAD").join(";");
    assert.doesNotMatch((await admin.handleQuery(all)).toString("latin1"), /password/i);
    // A careless view built straight from the config object would carry the origin's password along.
    const secret = "hunter2-origin-secret";
    setBindings(view.bindings().map((b) => ({ ...b, origin: { ...b.origin, password: secret } })));
    const bytes = (await admin.handleQuery(all)).toString("latin1");
    assert.ok(bytes.includes("db.internal"), "the commands ran");
    assert.doesNotMatch(bytes, /password|hunter2/i);
    // A config source described by a URL is masked too.
    const url = new AdminConsole({ ...view, configSource: `postgres://owner:${secret}@db.internal/orders` });
    const config = await query(url, "SHOW CONFIG");
    assert.equal(
      config.find((r) => r.key === "config_source")?.value,
      "postgres://owner:***@db.internal/orders",
    );
  });
});
