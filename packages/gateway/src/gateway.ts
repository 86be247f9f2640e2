import { randomBytes } from "node:crypto";
import net from "node:net";
import type tls from "node:tls";
import { buildCancelRequest, RandomPool } from "@pgbind/protocol";
import { AdminConsole } from "./admin-console.js";
import { BindingRuntime } from "./binding-runtime.js";
import { ClientSession, type SessionHost, sameKey } from "./client-session.js";
import { DEFAULT_LOGIN_TIMEOUT_MS, type GatewayConfig } from "./config.js";
import { diffBindings } from "./config-diff.js";
import type { ConfigSource } from "./config-source.js";
import { type NativeListener, nativeSocketLayer, type RelaySocket } from "./native-sockets.js";
import { connectTcp, negotiateOriginTls } from "./origin-socket.js";
import type { ServerConnection } from "./server-connection.js";
import { adoptClientSocket } from "./socket-reads.js";
import type { GatewayView } from "./view.js";

/** Structured log sink; fields never hold secrets. */
export type GatewayLog = (event: string, fields: Record<string, unknown>) => void;

export interface GatewayOptions {
  readonly source: ConfigSource;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** TLS for clients (SSLRequest); without it clients are told N and stay plaintext. */
  readonly tls?: tls.SecureContext;
  readonly log?: GatewayLog;
  /** Client messages above this many bytes are refused, default 64 MiB. */
  readonly maxClientMessage?: number;
  /**
   * A client must finish start-up and authentication within this many ms (PgBouncer's
   * client_login_timeout, PostgreSQL's authentication_timeout): a connection that never sends its
   * startup packet must not hold a socket forever. Wins over the config's `loginTimeoutMs`; without
   * either, 60 s.
   */
  readonly loginTimeoutMs?: number;
  /** Who may use the admin console (database `pgbind`): user names and SCRAM verifiers. */
  readonly adminCredentials?: readonly { readonly user: string; readonly scramVerifier: string }[];
}

/**
 * The gateway: accepts PostgreSQL clients, authenticates them against each binding's credentials and
 * pools server connections to the binding's origin. Bindings come from a {@link ConfigSource}.
 */
export class Gateway {
  readonly #options: GatewayOptions;
  readonly #bindings = new Map<string, BindingRuntime>();
  readonly #sessions = new Map<number, ClientSession>();
  /** Every client connection, logged in or not (`#sessions` has only those with a BackendKeyData). */
  readonly #connections = new Set<ClientSession>();
  readonly #server: net.Server;
  /** The native layer's listener once it has taken over #server's socket (then #server is closed). */
  #listener: NativeListener | undefined;
  #address: net.AddressInfo | undefined;
  /** Mutable where a reload may change it; sessions read it once, when they are accepted. */
  readonly #host: SessionHost & { loginTimeoutMs: number };
  #stopWatching: (() => void) | undefined;
  readonly #startedAt = Date.now();
  #paused = false;

  constructor(options: GatewayOptions) {
    this.#options = options;
    const log: GatewayLog = options.log ?? (() => {});
    this.#host = {
      tls: options.tls,
      mockSecret: randomBytes(32),
      random: new RandomPool(),
      maxClientMessage: options.maxClientMessage ?? 64 * 1024 * 1024,
      loginTimeoutMs: options.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS,
      binding: (database) => this.#bindings.get(database),
      register: (session) => this.#sessions.set(session.processId, session),
      unregister: (session) => {
        if (this.#sessions.get(session.processId) === session) this.#sessions.delete(session.processId);
      },
      cancel: (processId, secretKey) => this.#cancel(processId, secretKey),
      log,
      admin: options.adminCredentials?.length
        ? {
            console: new AdminConsole(this.view()),
            verifier: (user) => options.adminCredentials?.find((c) => c.user === user)?.scramVerifier,
          }
        : undefined,
    };
    // Serves clients when the native layer cannot take over the listening socket (not built, or
    // turned off): then each accepted net.Socket is adopted, or kept.
    this.#server = net.createServer({ noDelay: true, pauseOnConnect: true }, (accepted) => {
      this.#accept(nativeSocketLayer()?.adopt(accepted) ?? adoptClientSocket(accepted));
    });
  }

  #accept(socket: RelaySocket): void {
    socket.setNoDelay(true);
    const session = new ClientSession(socket, this.#host);
    this.#connections.add(session);
    socket.once("close", () => this.#connections.delete(session));
  }

  /** Loads the config, starts listening and follows config changes. Resolves with the bound address. */
  async start(): Promise<net.AddressInfo> {
    this.apply(await this.#options.source.load());
    this.#stopWatching = this.#options.source.watch((result) => {
      if ("config" in result) this.apply(result.config);
      else
        this.#host.log("config_rejected", {
          source: this.#options.source.description,
          error: result.error.message,
        });
    });
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.#options.port ?? 6432, this.#options.host ?? "127.0.0.1", () => {
        this.#server.removeListener("error", reject);
        resolve();
      });
    });
    this.#address = this.#server.address() as net.AddressInfo;
    // Accepting natively saves a net.Socket per client, which matters when every transaction is a new
    // connection (making one and adopting it was over a tenth of the gateway's CPU per connection).
    this.#listener = nativeSocketLayer()?.listen(
      this.#server,
      (socket) => this.#accept(socket),
      (error) => this.#host.log("accept_failed", { error: error.message }),
    );
    return this.#address;
  }

  /**
   * Applies a config without dropping healthy connections: new bindings start, removed ones stop, and
   * a binding whose origin or pool settings changed gets a fresh pool for new transactions while
   * running ones finish on the old. A new login timeout applies to clients that connect from now on.
   * Logs `config_applied` with every client database, and the ids of the bindings added, removed and
   * changed (with the names of the changed fields, never their values).
   */
  apply(config: GatewayConfig): void {
    const changes = diffBindings(
      [...this.#bindings.values()].map((runtime) => runtime.config),
      config.bindings,
    );
    this.#host.loginTimeoutMs =
      this.#options.loginTimeoutMs ?? config.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS;
    const next = new Map(config.bindings.map((b) => [b.database, b]));
    for (const [database, runtime] of this.#bindings) {
      const updated = next.get(database);
      if (!updated) {
        this.#bindings.delete(database);
        runtime.close();
      } else if (JSON.stringify(updated) !== JSON.stringify(runtime.config)) {
        if (runtime.onlyCredentialsDiffer(updated)) {
          // A rotation or revocation: keep the pool and its warm server connections.
          runtime.replaceCredentials(updated);
        } else {
          this.#bindings.set(database, new BindingRuntime(updated, { log: this.#host.log }));
          runtime.close();
        }
      }
    }
    for (const [database, binding] of next) {
      if (!this.#bindings.has(database))
        this.#bindings.set(database, new BindingRuntime(binding, { log: this.#host.log }));
    }
    this.#host.log("config_applied", {
      bindings: [...this.#bindings.keys()],
      ...changes,
      loginTimeoutMs: this.#host.loginTimeoutMs,
    });
  }

  get bindings(): ReadonlyMap<string, BindingRuntime> {
    return this.#bindings;
  }

  get sessions(): ReadonlyMap<number, ClientSession> {
    return this.#sessions;
  }

  /** A read-only view for the admin console and metrics. */
  view(): GatewayView {
    const gateway = this;
    const address = () => this.#address;
    return {
      startedAt: this.#startedAt,
      get listen() {
        const a = address();
        return { host: a?.address ?? "", port: a?.port ?? 0 };
      },
      configSource: this.#options.source.description,
      get paused() {
        return gateway.#paused;
      },
      get loginTimeoutMs() {
        return gateway.#host.loginTimeoutMs;
      },
      bindings: () =>
        [...this.#bindings.values()].map((runtime) => ({
          id: runtime.config.id,
          database: runtime.config.database,
          poolMode: runtime.config.poolMode,
          poolSize: runtime.config.poolSize,
          timeouts: runtime.config.timeouts,
          origin: {
            host: runtime.config.origin.host,
            port: runtime.config.origin.port,
            database: runtime.config.origin.database,
            user: runtime.config.origin.user,
            sslmode: runtime.config.origin.sslmode,
          },
          pool: runtime.pool.stats,
          clients: runtime.clients.size,
          transactions: runtime.counters.transactions,
          serverConnects: runtime.counters.serverConnects,
          serverConnectFailures: runtime.counters.serverConnectFailures,
        })),
      clients: () =>
        [...this.#sessions.values()].map((session) => ({
          processId: session.processId,
          user: session.user,
          database: session.database ?? "",
          state: session.server ? "active" : session.busy ? "waiting" : "idle",
          address: session.remoteAddress,
          connectedAt: session.connectedAt,
          serverId: session.server?.id,
        })),
      servers: () =>
        [...this.#bindings.values()].flatMap((runtime) => {
          const row = (server: ServerConnection, state: "active" | "idle") => ({
            id: server.id,
            database: runtime.config.database,
            state,
            origin: `${server.origin.host}:${server.origin.port}`,
            connectedAt: server.createdAt,
            preparedStatements: server.prepared.size,
          });
          return [
            ...runtime.pool.busy.map((server) => row(server, "active")),
            ...runtime.pool.idle.map((server) => row(server, "idle")),
          ];
        }),
      reload: async () => this.apply(await this.#options.source.load()),
      pause: () => {
        this.#paused = true;
        for (const runtime of this.#bindings.values()) runtime.pool.pause();
      },
      resume: () => {
        this.#paused = false;
        for (const runtime of this.#bindings.values()) runtime.pool.resume();
      },
    };
  }

  /** Stops accepting; waits up to `graceMs` for clients to finish their transactions, then closes everything. */
  async close(graceMs = 10_000): Promise<void> {
    this.#stopWatching?.();
    const listener = this.#listener;
    const closed = listener
      ? Promise.resolve(listener.close())
      : new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const deadline = Date.now() + graceMs;
    // Idle clients go now (as PgBouncer's SHUTDOWN WAIT_FOR_SERVERS): only running transactions are waited for,
    // and a client that finishes one is closed at its next idle moment rather than starting another.
    const shutdown = { severity: "FATAL", code: "57P01", message: "pgbind: the gateway is shutting down" };
    // Clients still logging in go at once too: the listening socket no longer tracks them (see
    // adoptClientSocket), and they have no transaction to finish.
    for (const session of [...this.#connections]) {
      if (session.state === "startup" || session.state === "authenticating") session.terminate(shutdown);
    }
    for (;;) {
      for (const session of [...this.#sessions.values()]) if (!session.busy) session.terminate(shutdown);
      if (this.#sessions.size === 0 || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const session of [...this.#sessions.values()]) session.terminate(shutdown);
    for (const runtime of this.#bindings.values()) runtime.close();
    await closed;
  }

  #cancel(processId: number, secretKey: Buffer): void {
    const session = this.#sessions.get(processId);
    const server = session?.server;
    if (!session || !server || !sameKey(session.secretKey, secretKey)) return;
    const origin = server.origin;
    // Best effort, like PostgreSQL's own cancel: no answer is sent to the canceller either way.
    void connectTcp(origin.host, origin.port, 5_000)
      .then((socket) => negotiateOriginTls(socket, origin, 5_000))
      .then((socket) => {
        socket.end(buildCancelRequest(server.processId, server.secretKey));
      })
      .catch((error: Error) => this.#host.log("cancel_failed", { error: error.message }));
  }
}
