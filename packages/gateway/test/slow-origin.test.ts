// An origin that is slow to accept: not listening yet (a database starting, or resuming from auto-pause
// like Aurora Serverless), accepting but answering only later, answering "the database system is starting
// up", or a black hole. With timeouts.connectMs long enough the client's first query succeeds; with it
// short the client gets a clear 08006 naming the reason, never a hang.
//
// A TCP proxy sits between the gateway and a real PostgreSQL; the test decides when it listens and how
// it behaves, which is faster and more exact than starting PostgreSQL late.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { freePort } from "@pgbind/local-postgres";
import { buildErrorResponse } from "@pgbind/protocol";
import pg from "pg";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import type { Gateway, Timeouts } from "../src/index.ts";
import { startGateway, testBinding } from "./support.ts";

const PASSWORD = "slow-origin-pw";
/** Per test: a hang fails the test instead of the whole run. */
const T = { timeout: 30_000 };

/** What the proxy does with a connection. */
type Behaviour =
  /** Passes bytes both ways to the real origin. */
  | { readonly kind: "forward" }
  /** Accepts and reads, never answers (a dead load balancer target, a hung host). */
  | { readonly kind: "black-hole" }
  /** Answers the start-up with FATAL 57P03, as PostgreSQL does while it starts or recovers. */
  | { readonly kind: "starting-up" }
  /** Accepts, then forwards only `ms` later: a database resuming while the connection waits. */
  | { readonly kind: "delay"; readonly ms: number };

/** A TCP proxy in front of the origin on a fixed port, which the test starts, stops and reconfigures. */
class OriginProxy {
  readonly port: number;
  readonly #target: { host: string; port: number };
  behaviour: Behaviour = { kind: "forward" };
  /** Connections accepted so far (each start-up attempt of the gateway is one). */
  accepted = 0;
  #server: net.Server | undefined;
  readonly #sockets = new Set<net.Socket>();

  constructor(port: number, target: { host: string; port: number }) {
    this.port = port;
    this.#target = target;
  }

  /** Starts accepting on `port`. */
  async listen(): Promise<void> {
    const server = net.createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => {
        server.removeListener("error", reject);
        resolve();
      });
    });
    this.#server = server;
  }

  /** Stops accepting (connections are refused) and cuts every open connection. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  }

  #accept(client: net.Socket): void {
    this.accepted++;
    this.#track(client);
    const behaviour = this.behaviour;
    switch (behaviour.kind) {
      case "forward":
        this.#forward(client);
        return;
      case "black-hole":
        client.resume();
        return;
      case "starting-up":
        client.once("data", () => {
          client.end(
            buildErrorResponse({
              severity: "FATAL",
              code: "57P03",
              message: "the database system is starting up",
            }),
          );
        });
        return;
      case "delay":
        client.pause();
        setTimeout(() => {
          if (!client.destroyed) this.#forward(client);
        }, behaviour.ms);
        return;
    }
  }

  #forward(client: net.Socket): void {
    const upstream = net.connect(this.#target.port, this.#target.host);
    this.#track(upstream);
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

let origin: TestPostgres;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  origin = await startTestPostgres();
});

after(async () => {
  await origin?.stop();
});

/** A proxy on a reserved free port (not listening yet) and a gateway whose origin is that port. */
async function setup(timeouts: Partial<Timeouts>, poolSize = 2) {
  const proxy = new OriginProxy(await freePort(), { host: origin.host, port: origin.port });
  const { gateway, port } = await startGateway([
    testBinding(
      { host: "127.0.0.1", port: proxy.port, user: origin.user, password: origin.password },
      { password: PASSWORD, poolSize, timeouts: { queryWaitMs: 20_000, ...timeouts } },
    ),
  ]);
  const client = () => {
    const c = new pg.Client({ host: "127.0.0.1", port, user: "app", password: PASSWORD, database: "db" });
    c.on("error", () => {});
    cleanups.push(() => c.end());
    return c;
  };
  cleanups.push(
    () => gateway.close(200),
    () => proxy.close(),
  );
  return { proxy, gateway, client };
}

async function cleanup() {
  // In the order pushed: clients, then the gateway, then the proxy. pg's end() can wait forever on a
  // client the gateway already closed, so each step gets a bound.
  for (const close of cleanups.splice(0)) {
    await Promise.race([close().catch(() => {}), new Promise((r) => setTimeout(r, 2_000).unref())]);
  }
}

function counters(gateway: Gateway) {
  const binding = gateway.bindings.get("db");
  assert.ok(binding);
  return binding.counters;
}

/** For assert.rejects: SQLSTATE `code` and a message matching `message`. */
function sqlState(code: string, message: RegExp) {
  return (error: unknown) => {
    const e = error as { code?: string; message?: string };
    assert.equal(e.code, code, `expected SQLSTATE ${code}, got ${e.code}: ${e.message}`);
    assert.match(e.message ?? "", message);
    return true;
  };
}

const later = (ms: number, fn: () => Promise<void> | void) =>
  new Promise<void>((resolve, reject) => setTimeout(() => Promise.resolve(fn()).then(resolve, reject), ms));

describe("origin slow to accept, client willing to wait (connectMs 15 s)", () => {
  it(
    "origin not listening when clients connect, up 3 s later: every client's first query succeeds",
    T,
    async () => {
      try {
        const { proxy, gateway, client } = await setup({ connectMs: 15_000 });
        const up = later(3_000, () => proxy.listen());
        const started = Date.now();
        // Four clients over a pool of two, all connecting while nothing listens.
        const results = await Promise.all(
          [0, 1, 2, 3].map(async (i) => {
            const c = client();
            await c.connect();
            return (await c.query("select $1::int as i", [i])).rows[0].i;
          }),
        );
        const waited = Date.now() - started;
        await up;
        assert.deepEqual(results, [0, 1, 2, 3]);
        assert.ok(waited >= 2_500, `the clients waited for the origin (${waited} ms)`);
        assert.ok(waited < 10_000, `served soon after the origin came up (${waited} ms)`);
        assert.equal(counters(gateway).serverConnectFailures, 0, "no connect gave up");
      } finally {
        await cleanup();
      }
    },
  );

  it(
    "origin accepts TCP but answers the start-up only 2 s later (resuming): the first query succeeds",
    T,
    async () => {
      try {
        const { proxy, client } = await setup({ connectMs: 15_000 });
        proxy.behaviour = { kind: "delay", ms: 2_000 };
        await proxy.listen();
        const started = Date.now();
        const c = client();
        await c.connect();
        assert.deepEqual((await c.query("select 1 as ok")).rows, [{ ok: 1 }]);
        const waited = Date.now() - started;
        assert.ok(waited >= 1_500 && waited < 10_000, `waited ${waited} ms`);
      } finally {
        await cleanup();
      }
    },
  );

  it(
    "origin answers 57P03 'starting up' for 2 s: retried with backoff, then the first query succeeds",
    T,
    async () => {
      try {
        const { proxy, gateway, client } = await setup({ connectMs: 15_000 }, 1);
        proxy.behaviour = { kind: "starting-up" };
        await proxy.listen();
        const ready = later(2_000, () => {
          proxy.behaviour = { kind: "forward" };
        });
        const started = Date.now();
        const c = client();
        await c.connect();
        assert.deepEqual((await c.query("select 2 as two")).rows, [{ two: 2 }]);
        const waited = Date.now() - started;
        await ready;
        assert.ok(waited >= 1_500 && waited < 10_000, `waited ${waited} ms`);
        // Backoff: a few attempts in 2 s, not a hot loop.
        const refused = proxy.accepted - 1;
        assert.ok(refused >= 2 && refused <= 20, `${refused} attempts answered 57P03 in 2 s`);
        assert.equal(counters(gateway).serverConnectFailures, 0);
      } finally {
        await cleanup();
      }
    },
  );

  it(
    "origin goes away between transactions and is back 2 s later: the next query waits and succeeds",
    T,
    async () => {
      try {
        const { proxy, client } = await setup({ connectMs: 15_000 });
        await proxy.listen();
        const c = client();
        await c.connect();
        const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid;
        await proxy.close(); // cuts the pooled server connections too
        const back = later(2_000, () => proxy.listen());
        const started = Date.now();
        const { rows } = await c.query("select pg_backend_pid() as pid, 3 as three");
        const waited = Date.now() - started;
        await back;
        assert.equal(rows[0].three, 3);
        assert.notEqual(rows[0].pid, pid, "a new server connection");
        assert.ok(waited >= 1_500 && waited < 10_000, `waited ${waited} ms`);
      } finally {
        await cleanup();
      }
    },
  );
});

describe("server connections lost under a client", () => {
  it("a server connection lost mid-transaction frees its pool slot (pool of 1, lost twice)", T, async () => {
    try {
      const { proxy, gateway, client } = await setup({ connectMs: 5_000, queryWaitMs: 3_000 }, 1);
      await proxy.listen();
      for (let round = 0; round < 2; round++) {
        const a = client();
        const lost = new Promise<Error & { code?: string }>((resolve) => a.on("error", resolve));
        await a.connect();
        await a.query("begin");
        await a.query("select 1");
        await proxy.close(); // the origin drops the connection a is using
        assert.equal((await lost).code, "08006");
        await proxy.listen();
        // The one slot is free again: the next client is served, not refused with 53300.
        const b = client();
        await b.connect();
        assert.deepEqual((await b.query("select $1::int as round", [round])).rows, [{ round }]);
      }
      const stats = gateway.bindings.get("db")?.pool.stats;
      assert.ok(stats && stats.active === 0 && stats.idle + stats.connecting <= 1, JSON.stringify(stats));
    } finally {
      await cleanup();
    }
  });
});

describe("origin unreachable, connectMs short (1.5 s): a clear 08006, never a hang", () => {
  it(
    "nothing listens: connecting fails with 08006 naming ECONNREFUSED, and the gateway recovers",
    T,
    async () => {
      try {
        const { proxy, gateway, client } = await setup({ connectMs: 1_500 });
        const started = Date.now();
        await assert.rejects(
          client().connect(),
          sqlState(
            "08006",
            new RegExp(`cannot reach the database: .*127\\.0\\.0\\.1:${proxy.port}: ECONNREFUSED`),
          ),
        );
        const took = Date.now() - started;
        assert.ok(took >= 1_200 && took < 4_000, `failed after ${took} ms: the whole 1.5 s budget was used`);
        assert.ok(counters(gateway).serverConnectFailures >= 1);
        // Once the origin is there, the same binding serves: nothing was left broken.
        await proxy.listen();
        const c = client();
        await c.connect();
        assert.deepEqual((await c.query("select 1 as ok")).rows, [{ ok: 1 }]);
      } finally {
        await cleanup();
      }
    },
  );

  it(
    "the origin disappears under a connected client: its next query fails with 08006 within connectMs",
    T,
    async () => {
      try {
        const { proxy, client } = await setup({ connectMs: 1_500 });
        await proxy.listen();
        const c = client();
        await c.connect();
        await c.query("select 1");
        await proxy.close();
        const started = Date.now();
        await assert.rejects(
          c.query("select 2"),
          sqlState("08006", /cannot reach the database: .*ECONNREFUSED/),
        );
        const took = Date.now() - started;
        assert.ok(took >= 1_200 && took < 4_000, `failed after ${took} ms: the whole 1.5 s budget was used`);
      } finally {
        await cleanup();
      }
    },
  );

  it("a black hole (accepts, never answers the start-up): 08006 within connectMs", T, async () => {
    try {
      const { proxy, client } = await setup({ connectMs: 1_500 });
      proxy.behaviour = { kind: "black-hole" };
      await proxy.listen();
      const started = Date.now();
      await assert.rejects(
        client().connect(),
        sqlState("08006", /cannot reach the database: .*did not finish start-up in time/),
      );
      const took = Date.now() - started;
      assert.ok(took >= 1_000 && took < 4_000, `failed after ${took} ms`);
      assert.ok(proxy.accepted >= 1);
    } finally {
      await cleanup();
    }
  });

  /** Connects `n` clients at once; each outcome with when it came. */
  async function connectMany(client: () => pg.Client, n: number) {
    const started = Date.now();
    return Promise.all(
      Array.from({ length: n }, async () => {
        try {
          await client().connect();
          return { code: "connected", names: false, ms: Date.now() - started };
        } catch (error) {
          const e = error as { code?: string; message?: string };
          return { code: e.code, names: /ECONNREFUSED/.test(e.message ?? ""), ms: Date.now() - started };
        }
      }),
    );
  }

  it("six clients waiting on a pool of two all get 08006 naming the reason, none hangs", T, async () => {
    try {
      const { client } = await setup({ connectMs: 1_500 });
      const outcomes = await connectMany(client, 6);
      for (const { code, names, ms } of outcomes) {
        assert.equal(code, "08006");
        assert.ok(names, "the message names ECONNREFUSED");
        // The pool fails one waiter per failed connect: with 6 waiters and 2 slots, 3 rounds of connectMs.
        assert.ok(ms < 3 * 1_500 + 1_000, `failed after ${ms} ms`);
      }
    } finally {
      await cleanup();
    }
  });

  it("six clients waiting on a pool of two all get 08006 within about connectMs, not in rounds of it", {
    ...T,
  }, async () => {
    try {
      const { client } = await setup({ connectMs: 1_500 });
      const outcomes = await connectMany(client, 6);
      const late = outcomes.filter(({ ms }) => ms > 1_500 + 1_000);
      assert.deepEqual(late, [], "every client failed within connectMs + 1 s");
    } finally {
      await cleanup();
    }
  });
});
