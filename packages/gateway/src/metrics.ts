// Prometheus metrics and a health check over HTTP. Every figure is read from the GatewayView when scraped,
// so nothing here has to be told about events, and nothing a scrape returns can go stale.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { BindingView, GatewayView } from "./view.js";

/** Where {@link startMetricsServer} listens. Port 0 picks a free port. */
export interface MetricsServerOptions {
  readonly host: string;
  readonly port: number;
}

/** A running metrics server. */
export interface MetricsServer {
  /** Base URL, e.g. `http://127.0.0.1:9187`; scrape `${url}/metrics`. */
  readonly url: string;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

const CLIENT_STATES = ["active", "idle", "waiting"] as const;
const SERVER_STATES = ["active", "idle", "connecting"] as const;

/**
 * A registry holding the gateway's metrics and prom-client's default process metrics, all collected from
 * `view` on each scrape. One per server: nothing is put in prom-client's global registry.
 *
 * Cumulative figures (`*_total`) are Counters whose collect callback resets them and adds the view's running
 * total, so they are exposed as TYPE counter; a binding re-created by a reload starts again from 0, which
 * Prometheus' rate() treats as a counter reset.
 */
export function createMetricsRegistry(view: GatewayView): Registry {
  const registry = new Registry();
  const registers = [registry];
  type Value = (b: BindingView) => number;
  const gauge = (name: string, help: string, value: Value) =>
    new Gauge({
      name,
      help,
      labelNames: ["database"] as const,
      registers,
      collect() {
        this.reset();
        for (const b of view.bindings()) this.set({ database: b.database }, value(b));
      },
    });
  const counter = (name: string, help: string, value: Value) =>
    new Counter({
      name,
      help,
      labelNames: ["database"] as const,
      registers,
      collect() {
        this.reset();
        for (const b of view.bindings()) this.inc({ database: b.database }, value(b));
      },
    });

  new Gauge({
    name: "pgbind_gateway_clients",
    help: "Client connections by database and state (active: holds a server connection; waiting: queued for one).",
    labelNames: ["database", "state"] as const,
    registers,
    collect() {
      this.reset();
      // Zeros for every binding and state, so a series does not vanish when its count drops to 0.
      for (const b of view.bindings())
        for (const state of CLIENT_STATES) this.set({ database: b.database, state }, 0);
      for (const c of view.clients()) this.inc({ database: c.database, state: c.state });
    },
  });
  new Gauge({
    name: "pgbind_gateway_server_connections",
    help: "Connections to the origin by database and state.",
    labelNames: ["database", "state"] as const,
    registers,
    collect() {
      this.reset();
      for (const b of view.bindings())
        for (const state of SERVER_STATES) this.set({ database: b.database, state }, b.pool[state]);
    },
  });
  gauge("pgbind_gateway_clients_waiting", "Clients queued for a server connection.", (b) => b.pool.waiting);
  gauge(
    "pgbind_gateway_max_wait_seconds",
    "How long the oldest queued client has waited, seconds.",
    (b) => b.pool.maxWaitMs / 1000,
  );
  gauge("pgbind_gateway_pool_size", "Configured maximum server connections.", (b) => b.poolSize);
  counter(
    "pgbind_gateway_transactions_total",
    "Transactions completed through the binding since it was loaded.",
    (b) => b.transactions,
  );
  counter(
    "pgbind_gateway_server_connects_total",
    "Server connections opened to the origin since the binding was loaded.",
    (b) => b.serverConnects,
  );
  counter(
    "pgbind_gateway_server_connect_failures_total",
    "Failed attempts to open a server connection since the binding was loaded.",
    (b) => b.serverConnectFailures,
  );
  new Gauge({
    name: "pgbind_gateway_paused",
    help: "1 while the gateway is paused (admin PAUSE), else 0.",
    registers,
    collect() {
      this.set(view.paused ? 1 : 0);
    },
  });
  // prom-client starts a GC observer and an event-loop monitor here that it never stops: a few objects per
  // registry, which is fine for a server that lives as long as the process.
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Why the gateway is unhealthy, or undefined when it is listening and not paused. */
function unhealthy(view: GatewayView): string | undefined {
  if (view.listen.port === 0) return "not listening";
  if (view.paused) return "paused (admin PAUSE)";
  return undefined;
}

/**
 * Serves `GET /metrics` (Prometheus text format) and `GET /healthz` (200 `{"status":"ok","bindings":N}`, or
 * 503 `{"status":"unavailable","reason":…}` when paused or not listening). Other paths get 404.
 */
export function startMetricsServer(view: GatewayView, options: MetricsServerOptions): Promise<MetricsServer> {
  const registry = createMetricsRegistry(view);
  const server = http.createServer((req, res) => {
    const send = (status: number, type: string, body: string, headers: http.OutgoingHttpHeaders = {}) => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store", ...headers });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    const json = (status: number, body: unknown) =>
      send(status, "application/json", `${JSON.stringify(body)}\n`);
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (path !== "/metrics" && path !== "/healthz") return json(404, { error: "not found" });
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(405, "text/plain", "method not allowed\n", { allow: "GET, HEAD" });
    }
    if (path === "/healthz") {
      const reason = unhealthy(view);
      const bindings = view.bindings().length;
      return reason === undefined
        ? json(200, { status: "ok", bindings })
        : json(503, { status: "unavailable", reason, bindings });
    }
    registry.metrics().then(
      (text) => send(200, registry.contentType, text),
      // The error text could quote anything a collector touched: keep it out of the response.
      () => send(500, "text/plain", "metrics collection failed\n"),
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      const { address, port } = server.address() as AddressInfo;
      const host = address.includes(":") ? `[${address}]` : address;
      resolve({
        url: `http://${host}:${port}`,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((error) => (error ? fail(error) : done()));
            // Scrapers keep connections alive; without this close() would wait for them to time out.
            server.closeAllConnections();
          }),
      });
    });
  });
}
