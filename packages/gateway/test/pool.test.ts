import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Poolable, PoolError, ServerPool } from "../src/pool.ts";

class FakeConn implements Poolable {
  static opened = 0;
  readonly id = ++FakeConn.opened;
  usable = true;
  closed = false;
  close() {
    this.closed = true;
    this.usable = false;
  }
}

function pool(overrides: Partial<ConstructorParameters<typeof ServerPool<FakeConn>>[0]> = {}) {
  const opened: FakeConn[] = [];
  const p = new ServerPool<FakeConn>({
    size: 2,
    connect: async () => {
      const c = new FakeConn();
      opened.push(c);
      return c;
    },
    queryWaitMs: 200,
    idleMs: 0,
    lifetimeMs: 0,
    ...overrides,
  });
  return { p, opened };
}

describe("ServerPool", () => {
  it("opens up to size connections and reuses released ones", async () => {
    const { p, opened } = pool();
    const a = await p.acquire();
    const b = await p.acquire();
    assert.notEqual(a, b);
    p.release(a);
    const c = await p.acquire();
    assert.equal(c, a, "the idle connection is reused");
    assert.equal(opened.length, 2);
    assert.deepEqual(
      { ...p.stats, maxWaitMs: 0 },
      { active: 2, idle: 0, connecting: 0, waiting: 0, maxWaitMs: 0, paused: false },
    );
    p.close();
  });

  it("queues waiters in order and fails them after queryWaitMs with POOL_TIMEOUT", async () => {
    const { p } = pool({ size: 1, queryWaitMs: 50 });
    const held = await p.acquire();
    const order: number[] = [];
    const first = p.acquire().then((c) => {
      order.push(1);
      return c;
    });
    const second = p.acquire().then((c) => {
      order.push(2);
      return c;
    });
    assert.equal(p.stats.waiting, 2);
    p.release(held);
    p.release(await first);
    p.release(await second);
    assert.deepEqual(order, [1, 2]);
    const blocker = await p.acquire();
    await assert.rejects(
      p.acquire(),
      (e: unknown) => e instanceof PoolError && e.code === "POOL_TIMEOUT" && /within 0\.05 s/.test(e.message),
    );
    p.release(blocker);
    p.close();
  });

  it("closes broken or non-reusable connections instead of pooling them", async () => {
    const { p, opened } = pool({ size: 1 });
    const a = await p.acquire();
    a.usable = false;
    p.release(a);
    assert.equal(a.closed, true);
    const b = await p.acquire();
    p.release(b, false);
    assert.equal(b.closed, true);
    await p.acquire();
    assert.equal(opened.length, 3);
    p.close();
  });

  it("a failed connect with no live connection fails every waiter at once; the next acquire tries again", async () => {
    let attempts = 0;
    const { p } = pool({
      queryWaitMs: 5_000,
      connect: async () => {
        if (++attempts <= 2) throw new Error("connection refused");
        return new FakeConn();
      },
    });
    const waiters = [p.acquire(), p.acquire(), p.acquire()];
    for (const waiter of waiters)
      await assert.rejects(waiter, /could not connect to the origin: connection refused/);
    assert.ok((await p.acquire()) instanceof FakeConn, "the origin is back: the next acquire connects");
    p.close();
  });

  it("with a live connection, a failed connect fails only the oldest waiter; the others get the live one", async () => {
    let attempts = 0;
    const { p } = pool({
      queryWaitMs: 5_000,
      connect: async () => {
        attempts++;
        if (attempts === 1) return new FakeConn();
        if (attempts === 2) throw new Error("connection refused");
        // Later attempts are still retrying (an origin coming back takes a while).
        return new Promise<FakeConn>(() => {});
      },
    });
    const held = await p.acquire();
    const failed = p.acquire();
    const served = p.acquire();
    await assert.rejects(failed, /connection refused/);
    p.release(held);
    assert.equal(await served, held);
    p.close();
  });

  it("retires connections past their lifetime on release", async () => {
    let now = 0;
    const { p } = pool({ size: 1, lifetimeMs: 1_000, now: () => now });
    const a = await p.acquire();
    now = 2_000;
    p.release(a);
    assert.equal(a.closed, true);
    p.close();
  });

  it("PAUSE holds waiters, RESUME serves them; close rejects waiters", async () => {
    const { p } = pool({ size: 1, queryWaitMs: 0 });
    p.pause();
    const waiting = p.acquire();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(p.stats.waiting, 1);
    p.resume();
    const conn = await waiting;
    const queued = p.acquire();
    p.close();
    await assert.rejects(queued, (e: unknown) => e instanceof PoolError && e.code === "POOL_CLOSED");
    p.release(conn);
    assert.equal(conn.closed, true);
  });
});
