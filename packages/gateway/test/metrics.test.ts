import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { register as globalRegistry } from "prom-client";
import { DEFAULT_TIMEOUTS } from "../src/config.ts";
import { type MetricsServer, startMetricsServer } from "../src/metrics.ts";
import type { PoolStats } from "../src/pool.ts";
import type { BindingView, ClientView, GatewayView } from "../src/view.ts";

const SECRET = "hunter2-origin-secret";

function binding(database: string, pool: Partial<PoolStats>, counts: Partial<BindingView> = {}): BindingView {
  return {
    id: database,
    database,
    poolMode: "transaction",
    poolSize: 10,
    timeouts: DEFAULT_TIMEOUTS,
    origin: { host: "db.internal", port: 5432, database, user: "owner", sslmode: "require" },
    pool: { active: 0, idle: 0, connecting: 0, waiting: 0, maxWaitMs: 0, paused: false, ...pool },
    clients: 0,
    transactions: 0,
    serverConnects: 0,
    serverConnectFailures: 0,
    ...counts,
  };
}

const client = (processId: number, state: ClientView["state"]): ClientView => ({
  processId,
  user: "app",
  database: "orders",
  state,
  address: "127.0.0.1:50000",
  connectedAt: 0,
  serverId: undefined,
});

type FakeView = GatewayView & {
  paused: boolean;
  listen: { host: string; port: number };
  bindingList: BindingView[];
  clientList: ClientView[];
};

/** Mutable fake: tests change its fields between scrapes. No password is part of the view. */
function fakeView(): FakeView {
  const view: FakeView = {
    startedAt: 0,
    listen: { host: "127.0.0.1", port: 6432 },
    configSource: "test",
    paused: false,
    loginTimeoutMs: 60_000,
    bindingList: [
      binding(
        "orders",
        { active: 2, idle: 1, connecting: 1, waiting: 3, maxWaitMs: 2500 },
        { transactions: 42, serverConnects: 5, serverConnectFailures: 2 },
      ),
      binding("billing", {}),
    ],
    clientList: [client(1, "active"), client(2, "active"), client(3, "waiting")],
    bindings: () => view.bindingList,
    clients: () => view.clientList,
    servers: () => [],
    reload: async () => {},
    pause: () => {},
    resume: () => {},
  };
  return view;
}

const servers: MetricsServer[] = [];
async function start(view: GatewayView): Promise<MetricsServer> {
  const server = await startMetricsServer(view, { host: "127.0.0.1", port: 0 });
  servers.push(server);
  return server;
}
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function scrape(server: MetricsServer): Promise<string> {
  const response = await fetch(`${server.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** The value of one sample, found by its exact name and label set as prom-client prints them. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("metrics server", () => {
  it("exposes the gateway's figures with their labels, read from the view", async () => {
    const text = await scrape(await start(fakeView()));
    const expected: Record<string, number> = {
      'pgbind_gateway_clients{database="orders",state="active"}': 2,
      'pgbind_gateway_clients{database="orders",state="waiting"}': 1,
      'pgbind_gateway_clients{database="orders",state="idle"}': 0,
      'pgbind_gateway_clients{database="billing",state="active"}': 0,
      'pgbind_gateway_server_connections{database="orders",state="active"}': 2,
      'pgbind_gateway_server_connections{database="orders",state="idle"}': 1,
      'pgbind_gateway_server_connections{database="orders",state="connecting"}': 1,
      'pgbind_gateway_clients_waiting{database="orders"}': 3,
      'pgbind_gateway_max_wait_seconds{database="orders"}': 2.5,
      'pgbind_gateway_pool_size{database="billing"}': 10,
      'pgbind_gateway_transactions_total{database="orders"}': 42,
      'pgbind_gateway_server_connects_total{database="orders"}': 5,
      'pgbind_gateway_server_connect_failures_total{database="orders"}': 2,
      'pgbind_gateway_server_connect_failures_total{database="billing"}': 0,
      pgbind_gateway_paused: 0,
    };
    for (const [series, value] of Object.entries(expected)) assert.equal(sample(text, series), value, series);
    assert.match(text, /^# TYPE pgbind_gateway_transactions_total counter$/m);
    assert.match(text, /^# TYPE pgbind_gateway_clients gauge$/m);
    assert.match(text, /^# HELP pgbind_gateway_max_wait_seconds /m);
    // prom-client's default process metrics, on this server's own registry.
    assert.match(text, /^process_cpu_user_seconds_total /m);
    assert.match(text, /^nodejs_heap_size_total_bytes /m);
  });

  it("collects on every scrape: changes show up and removed bindings disappear", async () => {
    const view = fakeView();
    const server = await start(view);
    await scrape(server);
    view.paused = true;
    view.bindingList = [binding("orders", { active: 7 }, { transactions: 50 })];
    const text = await scrape(server);
    assert.equal(sample(text, 'pgbind_gateway_server_connections{database="orders",state="active"}'), 7);
    assert.equal(sample(text, 'pgbind_gateway_transactions_total{database="orders"}'), 50);
    assert.equal(sample(text, "pgbind_gateway_paused"), 1);
    assert.doesNotMatch(text, /database="billing"/);
  });

  it("uses a registry per server, never prom-client's global one", async () => {
    const a = await start(fakeView());
    const other = fakeView();
    other.bindingList = [binding("inventory", {})];
    other.clientList = [];
    const b = await start(other);
    assert.match(await scrape(a), /database="orders"/);
    const textB = await scrape(b);
    assert.match(textB, /database="inventory"/);
    assert.doesNotMatch(textB, /database="orders"/);
    assert.equal(globalRegistry.getSingleMetric("pgbind_gateway_clients"), undefined);
  });

  it("/healthz: 200 with the binding count, 503 with a reason when paused or not listening", async () => {
    const view = fakeView();
    const server = await start(view);
    let response = await fetch(`${server.url}/healthz`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /application\/json/);
    assert.deepEqual(await response.json(), { status: "ok", bindings: 2 });
    view.paused = true;
    response = await fetch(`${server.url}/healthz`);
    assert.equal(response.status, 503);
    const body = (await response.json()) as { status: string; reason: string };
    assert.equal(body.status, "unavailable");
    assert.match(body.reason, /paused/);
    view.paused = false;
    view.listen = { host: "", port: 0 };
    response = await fetch(`${server.url}/healthz`);
    assert.equal(response.status, 503);
    assert.match(((await response.json()) as { reason: string }).reason, /not listening/);
  });

  it("answers 404 to other paths and 405 to other methods", async () => {
    const server = await start(fakeView());
    for (const path of ["/", "/metrics/x", "/favicon.ico"]) {
      const response = await fetch(`${server.url}${path}`);
      assert.equal(response.status, 404, path);
      await response.body?.cancel();
    }
    const post = await fetch(`${server.url}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    await post.body?.cancel();
  });

  it("never exposes an origin password, even if the view's origin carried one", async () => {
    const view = fakeView();
    view.bindingList = view.bindingList.map((b) => ({ ...b, origin: { ...b.origin, password: SECRET } }));
    const server = await start(view);
    const text = await scrape(server);
    const health = await (await fetch(`${server.url}/healthz`)).text();
    for (const body of [text, health]) assert.doesNotMatch(body, /password|hunter2/i);
  });

  it("close() stops listening", async () => {
    const server = await startMetricsServer(fakeView(), { host: "127.0.0.1", port: 0 });
    await scrape(server);
    await server.close();
    await assert.rejects(fetch(`${server.url}/healthz`));
  });

  it("rejects when the port is taken", async () => {
    const first = await start(fakeView());
    const port = Number(new URL(first.url).port);
    await assert.rejects(startMetricsServer(fakeView(), { host: "127.0.0.1", port }), /EADDRINUSE/);
  });
});
