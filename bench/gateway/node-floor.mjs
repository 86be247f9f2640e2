// The floor of a PostgreSQL proxy written on Node's net module: every client connection gets its own
// origin connection and bytes are forwarded both ways untouched, with no parsing, pooling or auth (the
// client authenticates with the origin itself). Whatever CPU per transaction this costs, the gateway
// cannot go below it with the same socket layer; the difference to PgBouncer is Node's, not pgbind's.
//
//   node bench/gateway/node-floor.mjs --origin 127.0.0.1:5432 --listen 127.0.0.1:6499 [--mode data|onread]
//
// --mode data    reads with 'data' events (Node's Readable path), as an idiomatic proxy does
// --mode onread  reads origin and client sockets with `onread` into a reused buffer, as the gateway
//                does on Node's sockets (PGBIND_GATEWAY_SOCKETS=node)
// --mode native  both sockets on the gateway's native socket layer (packages/gateway/native, built by
//                `npm run build`), as the gateway does by default
//
// Then point pgbench at --listen and read this process's CPU from /proc/<pid>/stat (it prints its pid).
import net from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    origin: { type: "string" },
    listen: { type: "string", default: "127.0.0.1:6499" },
    mode: { type: "string", default: "onread" },
  },
});
const split = (text, flag) => {
  const at = text?.lastIndexOf(":") ?? -1;
  const port = Number(text?.slice(at + 1));
  if (!text || at < 1 || !Number.isInteger(port) || port < 1 || port > 65_535) {
    console.error(`${flag}: expected host:port, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return { host: text.slice(0, at), port };
};
if (!["data", "onread", "native"].includes(values.mode)) {
  console.error(`--mode: expected data, onread or native, got ${JSON.stringify(values.mode)}`);
  process.exit(2);
}
const origin = split(values.origin, "--origin");
const listen = split(values.listen, "--listen");
const onread = values.mode === "onread";
const scratch = Buffer.allocUnsafe(64 * 1024);

function reading(target) {
  return {
    buffer: scratch,
    callback: (length, buffer) => {
      target().write(Buffer.from(buffer.subarray(0, length)));
      return true;
    },
  };
}

let layer;
if (values.mode === "native") {
  const { nativeSocketLayer } = await import("../../packages/gateway/dist/index.js");
  layer = nativeSocketLayer();
  if (!layer) {
    console.error("--mode native: the native socket layer is not built (npm run build) or is turned off");
    process.exit(2);
  }
}

/** Client and origin both on the native layer; client bytes wait for the origin's connect. */
function nativeProxy(accepted) {
  const client = layer.adopt(accepted);
  const early = [];
  let upstream;
  client.on("data", (chunk) => (upstream ? upstream.write(chunk) : early.push(chunk)));
  client.on("close", () => upstream?.destroy());
  client.on("error", () => {});
  const tcp = net.connect({ ...origin, noDelay: true }, () => {
    upstream = layer.adopt(tcp);
    for (const chunk of early.splice(0)) upstream.write(chunk);
    upstream.on("data", (chunk) => client.write(chunk));
    upstream.on("close", () => client.destroy());
    upstream.on("error", () => {});
  });
  tcp.on("error", () => client.destroy());
}

const server = net.createServer(
  { noDelay: true, pauseOnConnect: onread || layer !== undefined },
  (accepted) => {
    if (layer) {
      nativeProxy(accepted);
      return;
    }
    let client = accepted;
    let upstream;
    if (onread) {
      // As the gateway's adoptClientSocket: move the handle into a socket that reads through onread.
      const handle = accepted._handle;
      accepted._handle = null;
      accepted.destroy();
      client = new net.Socket({ handle, readable: true, writable: true, onread: reading(() => upstream) });
    }
    upstream = net.connect({
      ...origin,
      noDelay: true,
      ...(onread ? { onread: reading(() => client) } : {}),
    });
    if (!onread) {
      client.on("data", (chunk) => upstream.write(chunk));
      upstream.on("data", (chunk) => client.write(chunk));
    }
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.on("error", () => {});
    upstream.on("error", () => {});
  },
);
server.listen(listen.port, listen.host, () => {
  console.log(
    `node-floor (${values.mode}) pid ${process.pid} on ${listen.host}:${listen.port} → ${origin.host}:${origin.port}`,
  );
});
