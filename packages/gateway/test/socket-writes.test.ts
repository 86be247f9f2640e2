import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { describe, it } from "node:test";
import tls from "node:tls";
import { createTestPki } from "../../../test-support/pki.ts";
import { SocketWriter } from "../src/socket-writes.ts";

/** A connected pair over loopback: `near` is ours to write, `far` is the peer (paused until asked). */
async function socketPair(): Promise<{ near: net.Socket; far: net.Socket; close: () => void }> {
  const server = net.createServer({ pauseOnConnect: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, "connection");
  const near = net.connect(port, "127.0.0.1");
  await once(near, "connect");
  const [far] = (await accepted) as [net.Socket];
  return {
    near,
    far,
    close: () => {
      near.destroy();
      far.destroy();
      server.close();
    },
  };
}

function numbered(index: number, size: number): Buffer {
  const chunk = Buffer.alloc(size, index % 251);
  chunk.writeUInt32BE(index, 0);
  return chunk;
}

describe("SocketWriter", () => {
  it("keeps order with plain writes, says false when the kernel is full, and drains", async () => {
    const { near, far, close } = await socketPair();
    try {
      const writer = new SocketWriter(near);
      const size = 8 * 1024;
      let index = 0;
      // Both paths into the same stream, while everything fits in the kernel's buffers.
      for (; index < 24; index++) {
        const chunk = numbered(index, size);
        assert.equal(index % 3 === 2 ? near.write(chunk) : writer.write(chunk), true);
      }
      let full = false;
      while (!full && index < 100_000) full = !writer.write(numbered(index++, size));
      assert.ok(full, "a peer that does not read must fill the buffers");
      assert.equal(near.writableLength, 0, "the direct path, not the stream's buffer, took the writes");
      // More writes while one is pending queue behind it, and still say "wait".
      for (let extra = 0; extra < 4; extra++) assert.equal(writer.write(numbered(index++, size)), false);
      const drained = once(near, "drain");
      const received: Buffer[] = [];
      let bytes = 0;
      const all = new Promise<void>((resolve) => {
        far.on("data", (chunk: Buffer) => {
          received.push(chunk);
          bytes += chunk.length;
          if (bytes === index * size) resolve();
        });
      });
      far.resume();
      await Promise.all([drained, all]);
      const stream = Buffer.concat(received);
      for (let at = 0; at < index; at++) {
        assert.equal(stream.readUInt32BE(at * size), at, `chunk ${at} in its place`);
      }
      assert.equal(writer.write(Buffer.from("after")), true, "an empty pipe takes a small write at once");
    } finally {
      close();
    }
  });

  it("destroys the socket with the error when the peer is gone, without throwing", async () => {
    const { near, far, close } = await socketPair();
    try {
      const writer = new SocketWriter(near);
      far.resetAndDestroy();
      await once(near, "end").catch(() => undefined);
      const closed = once(near, "close");
      const errors: Error[] = [];
      near.on("error", (error) => errors.push(error));
      for (let i = 0; i < 64 && !near.destroyed; i++) {
        writer.write(Buffer.alloc(1024));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await closed;
      assert.ok(near.destroyed);
      assert.ok(errors.length <= 1);
    } finally {
      close();
    }
  });

  it("leaves TLS sockets on their own write path", async () => {
    const pki = await createTestPki();
    const server = tls.createServer({ cert: pki.serverCert, key: pki.serverKey });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as net.AddressInfo;
    const received = new Promise<string>((resolve) => {
      server.on("secureConnection", (socket: tls.TLSSocket) => {
        let text = "";
        socket.setEncoding("utf8");
        socket.on("data", (part: string) => {
          text += part;
          if (text.length >= 11) resolve(text);
        });
      });
    });
    const client = tls.connect({ port, host: "127.0.0.1", ca: pki.caCert, servername: "localhost" });
    await once(client, "secureConnect");
    try {
      const writer = new SocketWriter(client);
      writer.write(Buffer.from("hello "));
      writer.write(Buffer.from("world"));
      assert.equal(await received, "hello world");
    } finally {
      client.destroy();
      server.close();
    }
  });
});
