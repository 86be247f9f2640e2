// The protocol layer against a real PostgreSQL: raw startup exchanges over a socket, and a transparent relay
// that frames, scans and parses every byte of a real node-postgres session (pg does the SCRAM exchange).
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import {
  BackendMessage,
  buildCancelRequest,
  buildStartupMessage,
  type Frame,
  FrameScanner,
  FrontendMessage,
  MessageFramer,
  PROTOCOL_VERSION_3,
  parseAuthentication,
  parseBackendKeyData,
  parseBind,
  parseClose,
  parseCommandComplete,
  parseDataRow,
  parseDescribe,
  parseEmptyMessage,
  parseErrorResponse,
  parseExecute,
  parseNegotiateProtocolVersion,
  parseNoticeResponse,
  parseParameterStatus,
  parseParse,
  parseQuery,
  parseReadyForQuery,
  parseRowDescription,
  parseSASLInitialResponse,
  parseSASLResponse,
  parseStartupMessage,
  SSL_REQUEST,
  TransactionStatus,
} from "../src/index.ts";

let server: TestPostgres;

before(async () => {
  server = await startTestPostgres();
});

after(async () => {
  await server?.stop();
});

/** A raw client connection: writes bytes, reads frames through MessageFramer (or single bytes). */
class RawConnection {
  readonly #socket: net.Socket;
  readonly #framer = new MessageFramer();
  readonly #frames: Frame[] = [];
  #raw: number[] | undefined;
  #closed = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Buffer) => {
      if (this.#raw) this.#raw.push(...chunk);
      else this.#framer.push(chunk, (f) => this.#frames.push(f));
      this.#wake?.();
    });
    socket.on("error", (error) => {
      this.#error = error;
      this.#wake?.();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#wake?.();
    });
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => resolve(new RawConnection(socket)));
      socket.once("error", reject);
    });
  }

  send(bytes: Buffer): void {
    this.#socket.write(bytes);
  }

  async #until(ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.#error) throw this.#error;
      if (this.#closed) throw new Error("connection closed");
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  /** The next message from the server. */
  async frame(): Promise<Frame> {
    await this.#until(() => this.#frames.length > 0);
    return this.#frames.shift() as Frame;
  }

  /** One unframed byte (the answer to an SSLRequest). */
  async byte(): Promise<number> {
    this.#raw = [];
    await this.#until(() => (this.#raw?.length ?? 0) > 0);
    const [byte, ...rest] = this.#raw;
    assert.equal(rest.length, 0, "nothing may follow the SSLRequest answer");
    this.#raw = undefined;
    return byte as number;
  }

  /** Resolves when the server has closed the connection. */
  async closed(): Promise<void> {
    await this.#until(() => this.#closed).catch((error: Error) => {
      if (error.message !== "connection closed") throw error;
    });
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

describe("startup against a real PostgreSQL", { timeout: 20_000 }, () => {
  it("answers a StartupMessage with AuthenticationSASL offering SCRAM-SHA-256", async () => {
    const conn = await RawConnection.open(server.port);
    try {
      conn.send(buildStartupMessage({ user: server.user, database: "postgres" }));
      const auth = parseAuthentication(await conn.frame());
      assert.equal(auth.type, "SASL");
      assert.ok(auth.type === "SASL" && auth.mechanisms.includes("SCRAM-SHA-256"), JSON.stringify(auth));
    } finally {
      conn.destroy();
    }
  });

  it("answers an SSLRequest with one byte (N without TLS), then accepts the StartupMessage", async () => {
    const conn = await RawConnection.open(server.port);
    try {
      conn.send(SSL_REQUEST);
      assert.equal(String.fromCharCode(await conn.byte()), "N");
      conn.send(buildStartupMessage({ user: server.user, database: "postgres" }));
      assert.equal(parseAuthentication(await conn.frame()).type, "SASL");
    } finally {
      conn.destroy();
    }
  });

  it("rejects protocol 4.0 with FATAL 0A000, which we parse", async () => {
    const conn = await RawConnection.open(server.port);
    try {
      conn.send(buildStartupMessage({ user: server.user }, 4 << 16));
      const error = parseErrorResponse(await conn.frame());
      assert.equal(error.severityNonLocalized, "FATAL");
      assert.equal(error.code, "0A000");
      assert.match(error.message, /unsupported frontend protocol 4\.0/);
      await conn.closed();
    } finally {
      conn.destroy();
    }
  });

  it("rejects a StartupMessage without user with FATAL 28000", async () => {
    const conn = await RawConnection.open(server.port);
    try {
      conn.send(buildStartupMessage({ database: "postgres" }));
      const error = parseErrorResponse(await conn.frame());
      assert.equal(error.code, "28000");
      assert.match(error.message, /no PostgreSQL user name/);
      await conn.closed();
    } finally {
      conn.destroy();
    }
  });

  it("negotiates down a newer minor version and reports unknown _pq_ options, then authenticates", async () => {
    const conn = await RawConnection.open(server.port);
    try {
      const params = { user: server.user, database: "postgres", "_pq_.pgbind_test": "on" };
      conn.send(buildStartupMessage(params, PROTOCOL_VERSION_3 + 99));
      const negotiated = parseNegotiateProtocolVersion(await conn.frame());
      assert.equal(negotiated.protocolVersion >>> 16, 3, "the whole version code, not just the minor");
      assert.ok((negotiated.protocolVersion & 0xffff) < 99);
      assert.deepEqual(negotiated.unrecognized, ["_pq_.pgbind_test"]);
      assert.equal(parseAuthentication(await conn.frame()).type, "SASL");
    } finally {
      conn.destroy();
    }
  });
});

/** What the relay saw of one session. */
interface Observed {
  client: Frame[];
  server: Frame[];
  /** The scanner's status each time a server chunk ended with ReadyForQuery. */
  statuses: number[];
  scanner: FrameScanner;
  serverChunks: number;
  keys: { processId: number; secretKey: Buffer }[];
}

/**
 * A transparent TCP relay, what the gateway will be on its simplest path: it forwards every chunk
 * unchanged, frames the client side, and on the server side both scans headers and (for checking) frames.
 */
async function startRelay(
  port: number,
): Promise<{ port: number; sessions: Observed[]; close(): Promise<void> }> {
  const sessions: Observed[] = [];
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    const seen: Observed = {
      client: [],
      server: [],
      statuses: [],
      scanner: new FrameScanner({ capture: [BackendMessage.BackendKeyData] }),
      serverChunks: 0,
      keys: [],
    };
    sessions.push(seen);
    const clientFramer = new MessageFramer({ startup: true });
    const serverFramer = new MessageFramer();
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("data", (chunk: Buffer) => {
      clientFramer.push(chunk, (f) => seen.client.push(f));
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      seen.serverChunks++;
      seen.scanner.scan(chunk, (f) => seen.keys.push(parseBackendKeyData(f)));
      serverFramer.push(chunk, (f) => seen.server.push(f));
      if (seen.scanner.endsWithReadyForQuery) seen.statuses.push(seen.scanner.readyStatus);
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  return {
    port: (relay.address() as net.AddressInfo).port,
    sessions,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
}

/** Parses every frame of a session with the parser for its type; any ProtocolError fails the test. */
function parseSession(seen: Observed): void {
  const [startup, ...rest] = seen.client;
  assert.ok(startup);
  const params = parseStartupMessage(startup).parameters;
  assert.equal(params.get("user"), server.user);
  assert.equal(params.get("database"), "postgres");
  let passwordMessages = 0;
  for (const f of rest) {
    switch (f.code) {
      case FrontendMessage.Password:
        if (passwordMessages++ === 0) assert.equal(parseSASLInitialResponse(f).mechanism, "SCRAM-SHA-256");
        else assert.ok(parseSASLResponse(f).length > 0);
        break;
      case FrontendMessage.Query:
        parseQuery(f);
        break;
      case FrontendMessage.Parse:
        parseParse(f);
        break;
      case FrontendMessage.Bind:
        parseBind(f);
        break;
      case FrontendMessage.Describe:
        parseDescribe(f);
        break;
      case FrontendMessage.Execute:
        parseExecute(f);
        break;
      case FrontendMessage.Close:
        parseClose(f);
        break;
      default:
        parseEmptyMessage(f, f.code); // Sync, Flush, Terminate
    }
  }
  const parsers: Partial<Record<number, (f: Frame) => unknown>> = {
    [BackendMessage.Authentication]: parseAuthentication,
    [BackendMessage.ParameterStatus]: parseParameterStatus,
    [BackendMessage.BackendKeyData]: parseBackendKeyData,
    [BackendMessage.ReadyForQuery]: parseReadyForQuery,
    [BackendMessage.ErrorResponse]: parseErrorResponse,
    [BackendMessage.NoticeResponse]: parseNoticeResponse,
    [BackendMessage.CommandComplete]: parseCommandComplete,
    [BackendMessage.RowDescription]: parseRowDescription,
    [BackendMessage.DataRow]: parseDataRow,
  };
  for (const f of seen.server) {
    const parse = parsers[f.code];
    if (parse) parse(f);
    else if (f.code !== BackendMessage.ParameterDescription) parseEmptyMessage(f, f.code);
  }
}

describe("a real node-postgres session through a framing, scanning relay", { timeout: 60_000 }, () => {
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let client: pg.Client;
  let seen: Observed;

  before(async () => {
    relay = await startRelay(server.port);
    client = new pg.Client({
      host: "127.0.0.1",
      port: relay.port,
      user: server.user,
      password: server.password,
      database: "postgres",
    });
    await client.connect();
    seen = relay.sessions[0] as Observed;
  });

  after(async () => {
    await client?.end().catch(() => {});
    await relay?.close();
  });

  it("completes SCRAM and the startup, with every message framed and parsed", () => {
    const auth = seen.server
      .filter((f) => f.code === BackendMessage.Authentication)
      .map((f) => parseAuthentication(f).type);
    assert.deepEqual(auth, ["SASL", "SASLContinue", "SASLFinal", "Ok"]);
    const status = new Map(
      seen.server
        .filter((f) => f.code === BackendMessage.ParameterStatus)
        .map((f) => {
          const { name, value } = parseParameterStatus(f);
          return [name, value];
        }),
    );
    assert.equal(status.get("client_encoding"), "UTF8");
    assert.ok(status.get("server_version"));
    assert.deepEqual(seen.statuses, [TransactionStatus.Idle]);
    assert.equal(seen.keys.length, 1);
  });

  it("tracks the transaction status from headers alone: I, T, E, I", async () => {
    seen.statuses.length = 0;
    await client.query("select 1");
    await client.query("begin");
    await assert.rejects(client.query("select 1/0"), { code: "22012" });
    await client.query("rollback");
    const { I, T, E } = {
      I: TransactionStatus.Idle,
      T: TransactionStatus.InTransaction,
      E: TransactionStatus.Failed,
    };
    assert.deepEqual(seen.statuses, [I, T, E, I]);
  });

  it("parses the extended protocol pg sends for parameters and named statements", async () => {
    const from = seen.client.length;
    const result = await client.query({ name: "add_one", text: "select $1::int4 + 1 as n", values: [41] });
    assert.deepEqual(result.rows, [{ n: 42 }]);
    await client.query({ name: "add_one", text: "select $1::int4 + 1 as n", values: [1] });
    const sent = seen.client.slice(from);
    const parses = sent.filter((f) => f.code === FrontendMessage.Parse).map(parseParse);
    assert.deepEqual(parses, [{ name: "add_one", query: "select $1::int4 + 1 as n", paramTypes: [] }]);
    const binds = sent.filter((f) => f.code === FrontendMessage.Bind).map(parseBind);
    assert.deepEqual(binds, [
      { portal: "", statement: "add_one" },
      { portal: "", statement: "add_one" },
    ]);
  });

  it("frames and scans a large result spread over many chunks identically", async () => {
    const serverBefore = seen.server.length;
    const chunksBefore = seen.serverChunks;
    const { rows } = await client.query("select repeat('x', 200) as r from generate_series(1, 20000)");
    assert.equal(rows.length, 20_000);
    assert.ok(seen.serverChunks - chunksBefore > 10, "the result arrived in many chunks");
    const rowsFramed = seen.server.slice(serverBefore).filter((f) => f.code === BackendMessage.DataRow);
    assert.equal(rowsFramed.length, 20_000);
    assert.deepEqual(parseDataRow(rowsFramed[19_999] as Frame), ["x".repeat(200)]);
    assert.equal(seen.scanner.messages, seen.server.length);
    assert.equal(seen.scanner.endsWithReadyForQuery, true);
    parseSession(seen);
  });

  it("cancels a running query with our CancelRequest and the captured BackendKeyData", async () => {
    const key = seen.keys[0];
    assert.ok(key);
    const sleeping = assert.rejects(client.query("select pg_sleep(30)"), { code: "57014" });
    // Wait until the statement runs: a cancel that arrives before it would be lost.
    const observer = new pg.Client({
      host: "127.0.0.1",
      port: server.port,
      user: server.user,
      password: server.password,
    });
    await observer.connect();
    try {
      const running =
        "select 1 from pg_stat_activity where pid = $1 and state = 'active' and query like '%pg_sleep%'";
      while ((await observer.query(running, [key.processId])).rowCount === 0) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await observer.end();
    }
    const cancel = await RawConnection.open(server.port);
    cancel.send(buildCancelRequest(key.processId, key.secretKey));
    await cancel.closed(); // the server answers a CancelRequest by closing the connection
    await sleeping;
  });
});
