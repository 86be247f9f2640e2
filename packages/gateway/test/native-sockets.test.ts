import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { NativeSocket, type NativeSocketLayer, nativeSocketLayer } from "../src/native-sockets.ts";

let server: net.Server;
let port: number;
const accepted: net.Socket[] = [];

before(async () => {
  server = net.createServer({ pauseOnConnect: true }, (socket) => accepted.push(socket));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as net.AddressInfo).port;
});
after(() => server.close());

/** A native socket on our side of a loopback connection, and the plain peer (paused). */
async function nativePair(): Promise<{ near: NativeSocket; far: net.Socket }> {
  const layer = nativeSocketLayer() as NativeSocketLayer;
  const far = net.connect(port, "127.0.0.1");
  await once(far, "connect");
  while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
  const near = layer.adopt(accepted.shift() as net.Socket);
  assert.ok(near instanceof NativeSocket);
  far.pause();
  return { near, far };
}

/** A Node server listening on a free loopback port, for the native layer to take over, and its port. */
async function listeningServer(onConnection?: () => void): Promise<{ node: net.Server; listenPort: number }> {
  const node = net.createServer(onConnection);
  node.listen(0, "127.0.0.1");
  await once(node, "listening");
  return { node, listenPort: (node.address() as net.AddressInfo).port };
}

function collect(socket: NativeSocket | net.Socket, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  return new Promise((resolve) => {
    const onData = (chunk: Buffer) => {
      parts.push(chunk);
      total += chunk.length;
      if (total >= bytes) {
        socket.removeListener("data", onData);
        resolve(Buffer.concat(parts));
      }
    };
    socket.on("data", onData);
    socket.resume();
  });
}

function pattern(size: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

describe("native socket layer", () => {
  it("is built and loads here (Linux with a C compiler), unless turned off", () => {
    assert.ok(nativeSocketLayer(), "packages/gateway/native was not built: see scripts/build-native.mjs");
  });

  it("carries bytes both ways, in order, and reports the peer's address", async () => {
    const { near, far } = await nativePair();
    assert.equal(near.remoteAddress, "127.0.0.1");
    assert.equal(near.remotePort, far.localPort);
    const sent = pattern(300_000, 7);
    const arriving = collect(far, sent.length);
    for (let at = 0; at < sent.length; at += 1000) near.write(sent.subarray(at, at + 1000));
    assert.ok((await arriving).equals(sent));
    const back = pattern(500_000, 3);
    const received = collect(near, back.length);
    far.write(back);
    assert.ok((await received).equals(back));
    near.destroy();
    far.destroy();
  });

  it("says false when the peer does not read, drains in order, and pause() stops reading", async () => {
    const { near, far } = await nativePair();
    const size = 64 * 1024;
    let chunks = 0;
    while (near.write(pattern(size, chunks))) chunks++;
    chunks++;
    assert.ok(chunks > 1);
    const drained = once(near, "drain");
    const all = collect(far, chunks * size);
    await drained;
    const stream = await all;
    for (let i = 0; i < chunks; i++) {
      assert.ok(stream.subarray(i * size, (i + 1) * size).equals(pattern(size, i)), `chunk ${i}`);
    }
    near.pause();
    let early = 0;
    near.on("data", (chunk: Buffer) => {
      early += chunk.length;
    });
    far.write(Buffer.alloc(1000));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(early, 0, "a paused socket delivers nothing");
    near.resume();
    while (early < 1000) await new Promise((resolve) => setTimeout(resolve, 5));
    near.destroy();
    far.destroy();
  });

  it("more data in one loop turn than the read arena holds arrives whole on every connection", async () => {
    const pairs = await Promise.all(Array.from({ length: 24 }, () => nativePair()));
    const size = 512 * 1024;
    const results = pairs.map(({ near }) => collect(near, size));
    for (const [i, { far }] of pairs.entries()) far.write(pattern(size, i));
    const received = await Promise.all(results);
    for (const [i, bytes] of received.entries()) assert.ok(bytes.equals(pattern(size, i)), `connection ${i}`);
    for (const { near, far } of pairs) {
      near.destroy();
      far.destroy();
    }
  });

  it("the peer ending gives 'end' then 'close'; destroy() closes the peer, even with a child process running", async () => {
    const { near, far } = await nativePair();
    const events: string[] = [];
    near.on("end", () => events.push("end"));
    const closed = once(near, "close").then(() => events.push("close"));
    far.end();
    await closed;
    assert.deepEqual(events, ["end", "close"]);
    assert.equal(near.destroyed, true);

    const second = await nativePair();
    // A child started now must not inherit the connection (close-on-exec) and keep it open.
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      const peerEnded = once(second.far, "end");
      second.far.resume();
      second.near.destroy();
      await peerEnded;
    } finally {
      child.kill();
    }
  });

  it("destroy() emits 'close' once, and a connection adopted in the same tick is not disturbed", async () => {
    const layer = nativeSocketLayer() as NativeSocketLayer;
    const first = await nativePair();
    const farB = net.connect(port, "127.0.0.1");
    await once(farB, "connect");
    while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
    let closes = 0;
    first.near.on("close", () => closes++);
    // The closed connection's id must stay taken until its handle is gone, or B's events go astray.
    first.near.destroy();
    const nearB = layer.adopt(accepted.shift() as net.Socket) as NativeSocket;
    await once(first.near, "close");
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(closes, 1);
    const echoed = collect(farB, 4);
    nearB.on("data", (chunk: Buffer) => nearB.write(chunk));
    farB.write("ping");
    assert.equal((await echoed).toString(), "ping");
    assert.equal(nearB.destroyed, false);
    nearB.destroy();
    farB.destroy();
    first.far.destroy();
  });

  it("a write to a reset connection ends in 'error' then 'close', never a throw", async () => {
    const { near, far } = await nativePair();
    const errors: Error[] = [];
    const order: string[] = [];
    near.on("error", (error) => {
      errors.push(error);
      order.push("error");
    });
    // Not events.once(): it rejects on 'error', which is expected here.
    const closed = new Promise<void>((resolve) =>
      near.on("close", () => {
        order.push("close");
        resolve();
      }),
    );
    far.resetAndDestroy();
    for (let i = 0; i < 100 && !near.destroyed; i++) {
      near.write(Buffer.alloc(16 * 1024));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await closed;
    assert.ok(errors.length <= 1);
    assert.equal(order.at(-1), "close");
    if (errors[0]) assert.match(String((errors[0] as NodeJS.ErrnoException).code), /^E[A-Z]+$/);
  });

  it("release() hands the connection back to Node, which keeps using it", async () => {
    const { near, far } = await nativePair();
    near.write(Buffer.from("before|"));
    const plain = near.release();
    assert.equal(near.destroyed, true);
    const nearClosed = once(near, "close");
    plain.write("after");
    const text = (await collect(far, 12)).toString();
    assert.equal(text, "before|after");
    const reply = collect(plain, 4);
    far.write("pong");
    assert.equal((await reply).toString(), "pong");
    plain.destroy();
    far.destroy();
    await nearClosed;
  });

  it("takes over a listening socket: accepts natively, says who connected, stops when closed", async () => {
    const layer = nativeSocketLayer() as NativeSocketLayer;
    const { node, listenPort } = await listeningServer(() =>
      assert.fail("Node accepted a connection after the takeover"),
    );
    const sockets: NativeSocket[] = [];
    const errors: Error[] = [];
    const listener = layer.listen(
      node,
      (socket) => {
        sockets.push(socket);
        socket.on("data", (chunk: Buffer) => socket.write(chunk));
      },
      (error) => errors.push(error),
    );
    assert.ok(listener, "the layer did not take the listening socket");
    assert.equal(node.listening, false, "the Node server stays open beside the native listener");

    // (Accepted once it speaks: see the next test.)
    const far = net.connect(listenPort, "127.0.0.1");
    await once(far, "connect");
    const echoed = collect(far, 5);
    far.write("hello");
    assert.equal((await echoed).toString(), "hello");
    const near = sockets[0] as NativeSocket;
    assert.equal(sockets.length, 1);
    assert.equal(near.remoteAddress, "127.0.0.1");
    assert.equal(near.remotePort, far.localPort);

    listener.close();
    const refused = net.connect(listenPort, "127.0.0.1");
    const [error] = await once(refused, "error");
    assert.equal((error as NodeJS.ErrnoException).code, "ECONNREFUSED");
    // Connections accepted before stay up; and, close-on-exec, a child does not hold them open.
    const again = collect(far, 5);
    far.write("still");
    assert.equal((await again).toString(), "still");
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      const peerEnded = once(far, "end");
      near.destroy();
      await peerEnded;
    } finally {
      child.kill();
    }
    assert.deepEqual(errors, []);
  });

  it("accepts a connection once the client speaks, not before (TCP_DEFER_ACCEPT, Linux)", {
    skip: process.platform !== "linux",
  }, async () => {
    const layer = nativeSocketLayer() as NativeSocketLayer;
    const { node, listenPort } = await listeningServer();
    const accepted: string[] = [];
    const listener = layer.listen(
      node,
      (socket) => {
        accepted.push("accept");
        socket.on("data", (chunk: Buffer) => accepted.push(`data ${chunk.toString()}`));
      },
      (error) => assert.fail(error),
    );
    assert.ok(listener);
    const far = net.connect(listenPort, "127.0.0.1");
    try {
      await once(far, "connect");
      // Connected as far as the client knows; the gateway has nothing to do for it yet.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(accepted, []);
      far.write("startup");
      while (accepted.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
      // One wakeup: the accept and the first message together.
      assert.deepEqual(accepted, ["accept", "data startup"]);
    } finally {
      far.destroy();
      listener.close();
    }
  });

  it("a first message already there at accept arrives with the accept, in the same callback", async () => {
    const layer = nativeSocketLayer() as NativeSocketLayer;
    const { node, listenPort } = await listeningServer();
    const seen: string[] = [];
    const got = new Promise<NativeSocket>((resolve) => {
      const listener = layer.listen(
        node,
        (socket) => {
          listener?.close();
          socket.on("data", (chunk: Buffer) => seen.push(`data ${chunk.toString()}`));
          process.nextTick(() => {
            seen.push("next tick");
            resolve(socket);
          });
        },
        (error) => assert.fail(error),
      );
    });
    // A worker connects and writes while this thread is blocked: the bytes wait in the kernel.
    const sent = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      `const net = require("node:net");
       const { workerData } = require("node:worker_threads");
       const socket = net.connect(workerData.port, "127.0.0.1", () => {
         socket.write("startup", () => { Atomics.store(workerData.sent, 0, 1); Atomics.notify(workerData.sent, 0); });
       });
       socket.on("error", () => {});`,
      { eval: true, workerData: { port: listenPort, sent } },
    );
    try {
      assert.equal(Atomics.wait(sent, 0, 0, 20_000), "ok", "the worker did not write in time");
      const socket = await got;
      assert.deepEqual(seen, ["data startup", "next tick"]);
      socket.destroy();
    } finally {
      await worker.terminate();
    }
  });

  it("a loop turn with more events than the list holds delivers them early, losing none", async () => {
    // The worker's layer lists at most 8 events per delivery; 300 clients writing at once need many.
    const worker = new Worker(new URL("./fixtures/native-storm-worker.mjs", import.meta.url));
    const clients: net.Socket[] = [];
    try {
      const [ready] = await once(worker, "message");
      assert.equal(ready.error, undefined);
      for (let i = 0; i < 300; i++) clients.push(net.connect(ready.port, "127.0.0.1"));
      await Promise.all(clients.map((client) => once(client, "connect")));
      // Accepted one by one as each speaks; then the worker's loop is held while all 300 write, so one
      // turn finds them all readable.
      await Promise.all(
        clients.map((client) => {
          const hello = collect(client, 2);
          client.write("hi");
          return hello;
        }),
      );
      const hold = new Int32Array(new SharedArrayBuffer(8));
      worker.postMessage({ hold });
      while (Atomics.load(hold, 1) === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      const replies = clients.map((client, i) => {
        const message = `#${i}:${"x".repeat(i)}.`;
        const reply = collect(client, message.length);
        client.write(message);
        return reply.then((bytes) => assert.equal(bytes.toString(), message));
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      Atomics.store(hold, 0, 1);
      Atomics.notify(hold, 0);
      await Promise.all(replies);
      worker.postMessage("stats");
      const [stats] = await once(worker, "message");
      assert.equal(stats.accepted, 300);
      assert.ok(stats.full > 0, "no delivery found the event list full: the early path went untested");
    } finally {
      for (const client of clients) client.destroy();
      await worker.terminate();
    }
  });

  it("a worker thread that ends with native connections open ends cleanly, even as the addon's only user", async () => {
    // In a fresh process: here the test's own thread has the addon loaded, which would keep it mapped.
    const child = spawnSync(
      process.execPath,
      [fileURLToPath(new URL("./fixtures/native-worker-alone.mjs", import.meta.url))],
      { encoding: "utf8", timeout: 30_000 },
    );
    assert.deepEqual(
      { status: child.status, signal: child.signal, output: child.stdout + child.stderr },
      { status: 0, signal: null, output: "adopted\nworker exit 0\n" },
    );
  });
});
