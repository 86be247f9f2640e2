import { timingSafeEqual } from "node:crypto";
import type net from "node:net";
import tls from "node:tls";
import {
  AUTHENTICATION_OK,
  BackendMessage,
  buildAuthenticationSASL,
  buildAuthenticationSASLContinue,
  buildAuthenticationSASLFinal,
  buildBackendKeyData,
  buildErrorResponse,
  buildNegotiateProtocolVersion,
  buildParameterStatus,
  buildReadyForQuery,
  CANCEL_REQUEST_CODE,
  createMockScramVerifier,
  type ErrorFields,
  type Frame,
  FrontendMessage,
  GSSENC_REQUEST_CODE,
  isProtocolError,
  MessageFramer,
  PROTOCOL_VERSION_3,
  parseCancelRequest,
  parseParse,
  parseQuery,
  parseSASLInitialResponse,
  parseSASLResponse,
  parseStartupMessage,
  type RandomPool,
  ScramServerSession,
  SSL_REQUEST_CODE,
  TransactionStatus,
} from "@pgbind/protocol";
import type { AdminConsole } from "./admin-console.js";
import type { BindingRuntime } from "./binding-runtime.js";
import type { ClientCredential } from "./config.js";
import { NativeSocket, type RelaySocket } from "./native-sockets.js";
import { PoolError } from "./pool.js";
import { PreparedStatements } from "./prepared.js";
import { ResponseWalker } from "./response-walker.js";
import type { ServerConnection } from "./server-connection.js";
import { inspectStatement, mayNeedInspection, refusalQuery } from "./session-features.js";
import { type RelayWriter, relayWriter } from "./socket-writes.js";
import {
  buildSetQuery,
  decodeParameterStatus,
  TRACKED_PARAMETERS,
  type TrackedParameter,
  trackedParameter,
  trackedValues,
} from "./tracked-parameters.js";

/** What a client session needs from the gateway around it. */
export interface SessionHost {
  readonly tls: tls.SecureContext | undefined;
  /** Finds the binding serving a client database name. */
  binding(database: string): BindingRuntime | undefined;
  /** Registers the BackendKeyData handed to a client, for CancelRequest. */
  register(session: ClientSession): void;
  unregister(session: ClientSession): void;
  /** Forwards a CancelRequest carrying the gateway's own key to the right origin backend. */
  cancel(processId: number, secretKey: Buffer): void;
  readonly mockSecret: Buffer;
  /** Random bytes for cancel keys and SCRAM nonces, drawn from a block rather than one syscall each. */
  readonly random: RandomPool;
  /** Client messages larger than this are refused (protects memory). */
  readonly maxClientMessage: number;
  /** Start-up and authentication must be done within this many ms. */
  readonly loginTimeoutMs: number;
  /** The admin console and who may use it (database `pgbind`); undefined when none is configured. */
  readonly admin: { readonly console: AdminConsole; verifier(user: string): string | undefined } | undefined;
  log(event: string, fields: Record<string, unknown>): void;
}

type State = "startup" | "authenticating" | "ready" | "admin" | "closed";

const READY_IDLE = buildReadyForQuery(TransactionStatus.Idle);

/** Client bytes queued while waiting for a server connection before reading pauses. */
const PENDING_PAUSE_BYTES = 256 * 1024;
/** Staged messages up to this size are copied into one buffer and written with one call. */
const COALESCE_BYTES = 16 * 1024;
/** Staged bytes are written out at least this often while a large chunk is being framed. */
const FLUSH_BYTES = 256 * 1024;

/**
 * Every list of frames a session keeps comes from here: from one allocation site, V8 gives them all the
 * same elements kind. Lists from several `[]` literals, some never pushed to, disagreed, and the optimized
 * code that pushes frames was thrown away whenever it met the other kind (seen under pgbench -C).
 */
function frameList<T extends Buffer | Frame>(): T[] {
  return [];
}

/** The virtual database of the admin console, as PgBouncer's `pgbouncer` database. */
export const ADMIN_DATABASE = "pgbind";

/**
 * One client connection: the start-up handshake (TLS, SCRAM against the binding's stored verifiers) and
 * then transaction or session pooling: a server connection is held from the first message of a
 * transaction until ReadyForQuery reports idle with every Sync answered.
 */
export class ClientSession {
  readonly processId: number;
  readonly secretKey: Buffer;
  readonly connectedAt = Date.now();
  #socket: RelaySocket;
  /** Writes relayed results to #socket (see {@link relayWriter}). */
  #writer: RelayWriter;
  readonly #host: SessionHost;
  readonly #framer: MessageFramer;
  #state: State = "startup";
  #binding: BindingRuntime | undefined;
  #user = "";
  #scram: ScramServerSession | undefined;
  #server: ServerConnection | undefined;
  #acquiring = false;
  /** Client messages waiting for a server connection; reading pauses once they exceed PENDING_PAUSE_BYTES. */
  #pending: Frame[] = frameList();
  #pendingBytes = 0;
  #pausedForPool = false;
  /** What goes to the server for the messages of the chunk being read, written as one buffer at its end. */
  #out: (Buffer | Frame)[] = frameList();
  #outBytes = 0;
  /** True while a received chunk is being framed: staged messages are flushed once it is done. */
  #reading = false;
  readonly #statements = new PreparedStatements();
  /** Syncs/Queries sent to the server not yet answered by ReadyForQuery. */
  #outstanding = 0;
  #walker = new ResponseWalker();
  #lastReady = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #loginTimer: NodeJS.Timeout;
  #admin = false;
  /** The current server connection may carry session state (a SET) that must not reach the next client. */
  #dirty = false;
  #txStatus: number = TransactionStatus.Idle;
  #requestedDatabase = "";
  /** The client's application_name (from its startup packet or a SET; empty if it gave none). */
  #applicationName = "";
  /**
   * The other tracked parameters this client set itself (startup packet or SET), as the server reported
   * them; the origin's defaults apply to the rest. Usually none, so no Map per client.
   */
  #overrides: Map<TrackedParameter, string> | undefined;
  /** The hidden SET of tracked parameters failed: the client's values are refused by the origin. */
  #hiddenFailed = false;
  /** What the server had before the hidden SET, restored if it fails. */
  #hiddenRevert: [TrackedParameter, string | undefined][] | undefined;
  /** Replies still to come for statements the gateway sent on its own (hidden from the client). */
  #hiddenReplies = 0;
  /** The binding generation and expiry the client's credential was last checked against. */
  #generation = 0;
  #credentialExpiresAt = Number.POSITIVE_INFINITY;
  /** ReadyForQuery messages to hide: those of refusals sent in place of a Parse. */
  #hideReadyCount = 0;
  #discardUntilSync = false;
  /** Extended-protocol messages were forwarded since the last Sync: their answers are still to come. */
  #unsynced = false;
  /** Statements that make the server drop every prepared statement (DEALLOCATE ALL, DISCARD ALL). */
  #dropsStatements: WeakSet<Frame> | undefined;
  /** Frames in #dropsStatements not yet staged: skips the WeakSet lookup for every other message. */
  #dropsPending = 0;

  constructor(socket: RelaySocket, host: SessionHost) {
    this.#socket = socket;
    this.#writer = relayWriter(socket);
    this.#host = host;
    this.processId = host.random.positiveInt32();
    this.secretKey = host.random.bytes(4);
    this.#framer = new MessageFramer({ startup: true, maxMessageLength: host.maxClientMessage });
    this.#loginTimer = setTimeout(() => {
      if (this.#state === "startup" || this.#state === "authenticating") {
        // As PostgreSQL answers a client that outlives authentication_timeout.
        this.terminate({
          severity: "FATAL",
          code: "57014",
          message: "canceling authentication due to timeout",
        });
      }
    }, host.loginTimeoutMs);
    // Not unref()'d: every way out of start-up clears it, and the open socket keeps the loop alive anyway.
    // Unref'd timers made Node toggle the loop's timer ref whenever the count of ref'd ones crossed zero,
    // a path that deoptimized this constructor under pgbench -C.
    this.#listen(socket);
  }

  get remoteAddress(): string {
    return `${this.#socket.remoteAddress ?? ""}:${this.#socket.remotePort ?? ""}`;
  }
  get user(): string {
    return this.#user;
  }
  get database(): string | undefined {
    return this.#binding?.config.database;
  }
  get state(): State {
    return this.#state;
  }
  get server(): ServerConnection | undefined {
    return this.#server;
  }
  /** True while the client is inside a transaction or waiting for results. */
  get busy(): boolean {
    // In session mode the server stays attached between transactions: what counts is unanswered work.
    return (
      this.#acquiring ||
      this.#outstanding > 0 ||
      this.#txStatus !== TransactionStatus.Idle ||
      (this.#server !== undefined && this.#binding?.config.poolMode !== "session")
    );
  }

  /** Closes the client with a FATAL error (e.g. on shutdown). */
  terminate(fields: ErrorFields): void {
    if (this.#state === "closed") return;
    this.#socket.write(buildErrorResponse(fields));
    this.#close();
  }

  #listen(socket: RelaySocket): void {
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", () => this.#close());
    socket.on("close", () => this.#close());
    socket.on("drain", () => this.#server?.socket.resume());
  }

  #onData(chunk: Buffer): void {
    this.#reading = true;
    try {
      this.#framer.push(chunk, this.#onFrameBound);
    } catch (error) {
      if (isProtocolError(error)) {
        this.terminate(error.toErrorFields("FATAL"));
        return;
      }
      throw error;
    } finally {
      this.#reading = false;
    }
    if (this.#outBytes > 0) this.#flush();
  }

  readonly #onFrameBound = (frame: Frame): void => this.#onFrame(frame);

  #onFrame(frame: Frame): void {
    switch (this.#state) {
      case "startup":
        this.#onStartupFrame(frame);
        return;
      case "authenticating":
        this.#onAuthFrame(frame);
        return;
      case "ready":
        this.#onClientMessage(frame);
        return;
      case "admin":
        this.#onAdminMessage(frame);
        return;
      case "closed":
        return;
      default: {
        const exhaustive: never = this.#state;
        throw new Error(`unknown state ${String(exhaustive)}`);
      }
    }
  }

  #onStartupFrame(frame: Frame): void {
    switch (frame.code) {
      case SSL_REQUEST_CODE: {
        const context = this.#host.tls;
        if (!context || this.#socket instanceof tls.TLSSocket) {
          this.#socket.write("N");
          return;
        }
        this.#socket.write("S");
        const plain = this.#socket;
        plain.removeAllListeners("data");
        // TLS runs on Node's sockets: a native one hands its connection back first.
        const underlying = plain instanceof NativeSocket ? plain.release() : (plain as net.Socket);
        const secure = new tls.TLSSocket(underlying, { isServer: true, secureContext: context });
        this.#socket = secure;
        this.#writer = relayWriter(secure);
        this.#listen(secure);
        return;
      }
      case GSSENC_REQUEST_CODE:
        this.#socket.write("N");
        return;
      case CANCEL_REQUEST_CODE: {
        const { processId, secretKey } = parseCancelRequest(frame);
        this.#host.cancel(processId, secretKey);
        this.#close();
        return;
      }
      default:
        this.#onStartupMessage(frame);
    }
  }

  #onStartupMessage(frame: Frame): void {
    const startup = parseStartupMessage(frame);
    const user = startup.parameters.get("user") ?? "";
    const database = startup.parameters.get("database") || user;
    if (!user) {
      this.terminate({
        severity: "FATAL",
        code: "28000",
        message: "no PostgreSQL user name specified in startup packet",
      });
      return;
    }
    this.#user = user;
    this.#requestedDatabase = database;
    const asked = trackedValues(startup.parameters);
    this.#applicationName = asked.get("application_name") ?? "";
    asked.delete("application_name");
    this.#overrides = asked.size > 0 ? asked : undefined;
    if (startup.minorVersion > 0) {
      const unsupported = [...startup.parameters.keys()].filter((name) => name.startsWith("_pq_."));
      this.#socket.write(buildNegotiateProtocolVersion(PROTOCOL_VERSION_3, unsupported));
    }
    const admin = database === ADMIN_DATABASE ? this.#host.admin : undefined;
    this.#admin = admin !== undefined;
    const binding = admin ? undefined : this.#host.binding(database);
    const now = Date.now();
    const credential: ClientCredential | undefined = admin
      ? (() => {
          const verifier = admin.verifier(user);
          return verifier === undefined ? undefined : { user, scramVerifier: verifier };
        })()
      : binding?.config.credentials.find(
          (c) => c.user === user && (c.expiresAt === undefined || c.expiresAt.getTime() > now),
        );
    // Unknown database or user: run a full exchange against a mock verifier, so the answer looks the same.
    const verifier =
      credential && binding
        ? binding.verifier(credential.scramVerifier)
        : (credential?.scramVerifier ??
          createMockScramVerifier(`${database}\0${user}`, this.#host.mockSecret));
    this.#binding = credential ? binding : undefined;
    this.#generation = binding?.generation ?? 0;
    this.#credentialExpiresAt = credential?.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY;
    this.#scram = new ScramServerSession(verifier, { user, random: this.#host.random });
    this.#state = "authenticating";
    this.#socket.write(buildAuthenticationSASL(this.#scram.start()));
  }

  #onAuthFrame(frame: Frame): void {
    const scram = this.#scram;
    if (!scram || frame.code !== FrontendMessage.Password) {
      this.terminate({
        severity: "FATAL",
        code: "08P01",
        message: "expected a SASL response during authentication",
      });
      return;
    }
    const result =
      scram.state === "client-first"
        ? (() => {
            const { mechanism, data } = parseSASLInitialResponse(frame);
            return scram.handleClientFirst(mechanism, data);
          })()
        : scram.handleClientFinal(parseSASLResponse(frame));
    if (!result.ok) {
      this.#host.log("auth_failed", {
        client: this.remoteAddress,
        user: this.#user,
        database: this.#requestedDatabase,
        binding: this.#binding?.config.id,
        sqlstate: result.sqlstate,
        reason: result.reason,
      });
      this.terminate({ severity: "FATAL", code: result.sqlstate, message: result.message });
      return;
    }
    if (scram.state !== "succeeded") {
      this.#socket.write(buildAuthenticationSASLContinue(result.data));
      return;
    }
    // The exchange is over: its messages and keys need not stay for the life of the connection.
    this.#scram = undefined;
    const final = buildAuthenticationSASLFinal(result.data);
    const greeting = this.#binding?.greeting;
    if (greeting && !this.#admin) {
      // The usual case: SASLFinal and the whole start-up answer in one write.
      this.#finishStartup(greeting, final);
      return;
    }
    this.#socket.write(final);
    if (this.#admin && this.#host.admin) {
      this.#state = "admin";
      clearTimeout(this.#loginTimer);
      this.#socket.write(
        Buffer.concat([
          AUTHENTICATION_OK,
          buildParameterStatus("server_version", "17.0 (pgbind)"),
          buildParameterStatus("client_encoding", "UTF8"),
          buildParameterStatus("server_encoding", "UTF8"),
          buildParameterStatus("DateStyle", "ISO, MDY"),
          buildParameterStatus("standard_conforming_strings", "on"),
          buildBackendKeyData(this.processId, this.secretKey),
          buildReadyForQuery(TransactionStatus.Idle),
        ]),
      );
      return;
    }
    const binding = this.#binding;
    if (!binding) {
      // The mock verifier cannot succeed without the mock secret; treat it as a failure all the same.
      this.terminate({
        severity: "FATAL",
        code: "28P01",
        message: `password authentication failed for user "${this.#user}"`,
      });
      return;
    }
    this.#socket.pause();
    binding.originParameters().then(
      () => this.#finishStartup(binding.greeting as Buffer),
      (error: Error) => this.terminate(originUnavailable(error)),
    );
  }

  #finishStartup(greeting: Buffer, before?: Buffer): void {
    if (this.#state === "closed") return;
    // The greeting has the origin's values; the client's own follow and take their place.
    const tail = [buildParameterStatus("application_name", this.#applicationName)];
    for (const [name, value] of this.#overrides ?? []) tail.push(buildParameterStatus(name, value));
    tail.push(buildBackendKeyData(this.processId, this.secretKey), READY_IDLE);
    this.#socket.write(Buffer.concat(before ? [before, greeting, ...tail] : [greeting, ...tail]));
    this.#state = "ready";
    clearTimeout(this.#loginTimer);
    this.#host.register(this);
    this.#binding?.sessionOpened(this);
    if (this.#socket.isPaused()) this.#socket.resume();
    this.#armIdleTimer();
  }

  /** Closes a client idle outside a transaction for `idleClientMs` (0 disables), like idle_session_timeout. */
  #armIdleTimer(): void {
    clearTimeout(this.#idleTimer);
    const ms = this.#binding?.config.timeouts.idleClientMs ?? 0;
    if (ms <= 0 || this.#state !== "ready") return;
    this.#idleTimer = setTimeout(() => {
      if (this.#acquiring || this.#outstanding > 0 || this.#txStatus !== TransactionStatus.Idle) return;
      this.terminate({
        severity: "FATAL",
        code: "57P05",
        message: `pgbind: terminating connection due to idle-session timeout (${ms / 1000} s)`,
      });
    }, ms);
    this.#idleTimer.unref();
  }

  #onAdminMessage(frame: Frame): void {
    const admin = this.#host.admin;
    if (frame.code === FrontendMessage.Terminate || !admin) {
      this.#close();
      return;
    }
    if (frame.code !== FrontendMessage.Query) {
      // The console answers simple queries only (as PgBouncer's); the extended protocol would need Sync bookkeeping.
      this.terminate({
        severity: "FATAL",
        code: "08P01",
        message: "the pgbind admin console supports only simple queries (use psql)",
      });
      return;
    }
    this.#socket.pause();
    admin.console.handleQuery(parseQuery(frame)).then((reply) => {
      if (this.#state === "closed") return;
      this.#socket.write(reply);
      this.#socket.resume();
    });
  }

  #onClientMessage(input: Frame): void {
    clearTimeout(this.#idleTimer);
    let frame = input;
    const binding = this.#binding as BindingRuntime;
    const code = frame.code;
    if (code === FrontendMessage.Terminate) {
      // The client said goodbye and reads nothing more: close at once, no shutdown() and wait for the FIN.
      this.#close(false);
      return;
    }
    if (
      (code === FrontendMessage.CopyData ||
        code === FrontendMessage.CopyDone ||
        code === FrontendMessage.CopyFail) &&
      this.#server === undefined &&
      this.#pending.length === 0 &&
      !this.#acquiring
    ) {
      // The rest of a COPY the server already ended (e.g. on bad data): nobody would answer it.
      return;
    }
    if (this.#discardUntilSync) {
      // The rest of a refused extended-protocol round: the server would skip it too, after the error.
      if (code !== FrontendMessage.Sync) return;
      this.#discardUntilSync = false;
    }
    if (binding.config.poolMode === "transaction") {
      const isQuery = code === FrontendMessage.Query;
      // The byte-level pre-check spares the common statement its decoding and the inspection's regexes.
      if ((isQuery || code === FrontendMessage.Parse) && mayNeedInspection(frame.payload)) {
        const facts = inspectStatement(isQuery ? parseQuery(frame) : parseParse(frame).query);
        if (facts.changesState) this.#dirty = true;
        if (facts.dropsStatements) {
          this.#dropsStatements ??= new WeakSet();
          this.#dropsStatements.add(frame);
          this.#dropsPending++;
        }
        if (facts.feature) {
          // The server itself raises the refusal, so it lands where the client expects it and fails an open
          // transaction. A Query is replaced by it; a Parse by it as a simple Query whose ReadyForQuery is
          // hidden, the round skipped up to its Sync (whose ReadyForQuery the client gets as usual).
          const refusal = refusalQuery(facts.feature);
          const refusalFrame = {
            code: refusal[0] as number,
            length: refusal.readInt32BE(1),
            payload: refusal.subarray(5),
          };
          if (isQuery) {
            frame = refusalFrame;
          } else {
            this.#hideReadyCount++;
            this.#discardUntilSync = true;
            this.#stageOrQueue(refusalFrame);
            return;
          }
        }
      }
    }
    if (
      code === FrontendMessage.Sync ||
      code === FrontendMessage.Query ||
      code === FrontendMessage.FunctionCall
    ) {
      this.#outstanding++;
    }
    if (code === FrontendMessage.Sync) this.#unsynced = false;
    else if (
      code === FrontendMessage.Parse ||
      code === FrontendMessage.Bind ||
      code === FrontendMessage.Describe ||
      code === FrontendMessage.Execute ||
      code === FrontendMessage.Close ||
      code === FrontendMessage.Flush
    )
      this.#unsynced = true;
    this.#stageOrQueue(frame);
  }

  #stageOrQueue(frame: Frame): void {
    const server = this.#server;
    if (server) {
      this.#stage(server, frame);
      return;
    }
    // Frame payloads stay valid after later pushes (the framer never reuses their memory).
    this.#pending.push(frame);
    this.#pendingBytes += frame.length + 1;
    if (!this.#acquiring) this.#acquireCurrent();
    else if (this.#pendingBytes > PENDING_PAUSE_BYTES && !this.#pausedForPool) {
      // Nothing more is read until a server connection is ours: the wait cannot buffer without bound.
      this.#pausedForPool = true;
      this.#socket.pause();
    }
  }

  /** Queues one client message for `server`, renaming prepared statements in transaction mode. */
  #stage(server: ServerConnection, frame: Frame): void {
    // Other clients' statements on this server are gone too: they are prepared again on next use.
    if (this.#dropsPending > 0 && this.#dropsStatements?.has(frame)) {
      this.#dropsPending--;
      server.prepared.clear();
    }
    const translated =
      this.#binding?.config.poolMode === "transaction"
        ? this.#statements.translate(frame, server)
        : undefined;
    if (translated) {
      for (const buffer of translated) {
        this.#out.push(buffer);
        this.#outBytes += buffer.length;
      }
    } else {
      this.#out.push(frame);
      this.#outBytes += frame.length + 1;
    }
    if (!this.#reading || this.#outBytes >= FLUSH_BYTES) this.#flush();
  }

  /**
   * Writes what was staged: small batches (a whole extended-protocol round of Parse/Bind/Describe/
   * Execute/Sync) as one buffer, so each client chunk costs one write to the server, not one per message.
   */
  #flush(): void {
    const server = this.#server;
    const out = this.#out;
    const total = this.#outBytes;
    this.#out = frameList();
    this.#outBytes = 0;
    if (!server || out.length === 0) return;
    let ok = true;
    const only = out.length === 1 ? out[0] : undefined;
    const whole = out.length > 1 ? contiguousFrames(out, total) : undefined;
    if (only !== undefined && !("payload" in only)) {
      ok = server.write(only);
    } else if (whole !== undefined) {
      ok = server.write(whole);
    } else if (total <= COALESCE_BYTES) {
      const message = Buffer.allocUnsafe(total);
      let at = 0;
      for (const item of out) {
        if ("payload" in item) {
          message[at] = item.code;
          message.writeInt32BE(item.length, at + 1);
          at += 5 + item.payload.copy(message, at + 5);
        } else {
          at += item.copy(message, at);
        }
      }
      ok = server.write(message);
    } else {
      // Large messages (COPY data, big Binds) go out as they are: copying them would cost more than writev.
      const socket = server.socket;
      socket.cork();
      for (const item of out) {
        if ("payload" in item) {
          const header = Buffer.allocUnsafe(5);
          header[0] = item.code;
          header.writeInt32BE(item.length, 1);
          server.write(header);
          ok = server.write(item.payload);
        } else {
          ok = server.write(item);
        }
      }
      socket.uncork();
    }
    if (!ok) {
      this.#socket.pause();
      server.socket.once("drain", () => this.#socket.resume());
    }
  }

  /**
   * Follows config reloads between transactions: a binding whose config changed has a new runtime (and
   * pool); the client moves to it if its credential is still valid there, and is refused otherwise.
   */
  #acquireCurrent(): void {
    const old = this.#binding as BindingRuntime;
    const current = this.#host.binding(old.config.database);
    const now = Date.now();
    if (current === old && old.generation === this.#generation && now < this.#credentialExpiresAt) {
      this.#acquire(old);
      return;
    }
    const credential = current?.config.credentials.find(
      (c) => c.user === this.#user && (c.expiresAt === undefined || c.expiresAt.getTime() > now),
    );
    if (current !== old) old.sessionClosed(this);
    if (!current || !credential) {
      this.terminate({
        severity: "FATAL",
        code: "28P01",
        message: current
          ? "pgbind: this client's credential was revoked"
          : "pgbind: this database is no longer served",
      });
      return;
    }
    this.#generation = current.generation;
    this.#credentialExpiresAt = credential.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY;
    if (current !== old) {
      this.#binding = current;
      current.sessionOpened(this);
    }
    this.#acquire(current);
  }

  #acquire(binding: BindingRuntime): void {
    const ready = binding.pool.tryAcquire();
    if (ready) {
      this.#attach(ready);
      return;
    }
    this.#acquiring = true;
    binding.pool.acquireWith(
      (server) => {
        this.#acquiring = false;
        if (this.#state === "closed") {
          binding.pool.release(server);
          return;
        }
        this.#attach(server);
        if (this.#pausedForPool) {
          this.#pausedForPool = false;
          this.#socket.resume();
        }
      },
      (error: Error) => {
        this.#acquiring = false;
        const pending = this.#pending;
        const outstanding = this.#outstanding;
        this.#pending = frameList();
        this.#pendingBytes = 0;
        this.#outstanding = 0;
        if (this.#state === "closed") return;
        if (
          error instanceof PoolError &&
          error.code === "POOL_CLOSED" &&
          this.#host.binding(binding.config.database) !== binding
        ) {
          // The config was reloaded while we waited: retry on the new pool.
          this.#pending = pending;
          this.#pendingBytes = pending.reduce((sum, frame) => sum + frame.length + 1, 0);
          this.#outstanding = outstanding;
          this.#acquireCurrent();
          return;
        }
        const fields =
          error instanceof PoolError && error.code === "POOL_TIMEOUT"
            ? { severity: "FATAL", code: "53300", message: `pgbind: ${error.message}; try again later` }
            : originUnavailable(error);
        this.terminate(fields);
      },
    );
  }

  #attach(server: ServerConnection): void {
    this.#server = server;
    this.#walker.reset();
    this.#lastReady = 0;
    this.#statements.resetServer();
    server.attach(this.#serverListener);
    this.#hiddenReplies = 0;
    // As PgBouncer does: the server connection takes this client's tracked parameters (application_name,
    // TimeZone, …) in one hidden SET before its statements.
    let changes: [TrackedParameter, string][] | undefined;
    for (const name of TRACKED_PARAMETERS) {
      const value = this.#wanted(name);
      if (value === undefined || server.settings.get(name) === value) continue;
      changes ??= [];
      changes.push([name, value]);
    }
    if (changes) {
      const set = buildSetQuery(changes);
      this.#out.push(set);
      this.#outBytes += set.length;
      this.#hiddenRevert = changes.map(([name]) => [name, server.settings.get(name)]);
      for (const [name, value] of changes) server.settings.set(name, value);
      this.#hiddenReplies = 1;
    }
    const pending = this.#pending;
    this.#pending = frameList();
    this.#pendingBytes = 0;
    const reading = this.#reading;
    // Inside a chunk, the rest of it is staged behind these and written with them.
    this.#reading = true;
    for (const frame of pending) this.#stage(server, frame);
    this.#reading = reading;
    if (!reading) this.#flush();
  }

  readonly #serverListener = {
    onData: (chunk: Buffer) => this.#onServerData(chunk),
    onClose: () => this.#onServerLost(),
  };

  readonly #keepServerMessage = (code: number): boolean => {
    if (this.#hiddenReplies > 0) {
      if (code === BackendMessage.ErrorResponse) this.#hiddenFailed = true;
      if (code === BackendMessage.ReadyForQuery) {
        this.#hiddenReplies--;
        // Not the answer to any of the client's Syncs.
        this.#lastReady++;
      }
      return false;
    }
    const keep = this.#statements.onServerMessage(code, this.#server as ServerConnection);
    if (code === BackendMessage.ReadyForQuery && this.#hideReadyCount > 0) {
      this.#hideReadyCount--;
      this.#lastReady++;
      return false;
    }
    return keep;
  };

  /** A tracked parameter the server reports changed (the client's SET, RESET, or a transaction's end). */
  readonly #onParameterStatus = (body: Buffer): void => {
    const status = decodeParameterStatus(body);
    const name = status && trackedParameter(status.name);
    if (!status || !name) return;
    if (name === "application_name") {
      this.#applicationName = status.value;
    } else {
      this.#overrides ??= new Map();
      this.#overrides.set(name, status.value);
    }
    this.#server?.settings.set(name, status.value);
  };

  /**
   * What the client believes `name` is: its own value, or the origin's default. A server connection that
   * differs (another client's value) gets it set before serving this client.
   */
  #wanted(name: TrackedParameter): string | undefined {
    if (name === "application_name") return this.#applicationName;
    return this.#overrides?.get(name) ?? this.#binding?.trackedDefaults.get(name);
  }

  /**
   * The origin refused the client's tracked parameters (a bad TimeZone or DateStyle in its startup packet):
   * PostgreSQL itself would have refused the connection, so the client gets the same FATAL.
   */
  #refuseSettings(server: ServerConnection): void {
    this.#hiddenFailed = false;
    const revert = this.#hiddenRevert ?? [];
    for (const [name, value] of revert) {
      if (value === undefined) server.settings.delete(name);
      else server.settings.set(name, value);
    }
    // Name what the client asked for; the rest of the SET only returned the server to the origin's defaults.
    const asked = revert.filter(([name]) => this.#overrides?.has(name));
    const names = (asked.length > 0 ? asked : revert).map(
      ([name]) => `${name}=${JSON.stringify(this.#wanted(name))}`,
    );
    this.terminate({
      severity: "FATAL",
      code: "22023",
      message: `pgbind: the origin refuses this client's session parameters (${names.join(", ")})`,
    });
  }

  #onServerData(chunk: Buffer): void {
    const server = this.#server as ServerConnection;
    const walker = this.#walker;
    const parts = walker.walk(chunk, this.#keepServerMessage, this.#onParameterStatus);
    if (this.#hiddenFailed && this.#hiddenReplies === 0) {
      this.#refuseSettings(server);
      return;
    }
    let ok = true;
    for (const part of parts) ok = this.#writer.write(part);
    if (!ok) server.socket.pause();
    const ready = walker.readyCount - this.#lastReady;
    if (ready > 0) {
      this.#lastReady = walker.readyCount;
      this.#outstanding = Math.max(0, this.#outstanding - ready);
      this.#txStatus = walker.readyStatus;
      this.#binding?.countTransactions(ready);
      // In session mode the server stays attached: the client is idle once every Sync is answered.
      if (
        this.#outstanding === 0 &&
        walker.readyStatus === TransactionStatus.Idle &&
        this.#binding?.config.poolMode === "session"
      )
        this.#armIdleTimer();
    }
    if (
      ready > 0 &&
      this.#outstanding === 0 &&
      !this.#unsynced &&
      walker.endsWithReady &&
      walker.readyStatus === TransactionStatus.Idle &&
      this.#binding?.config.poolMode === "transaction"
    ) {
      this.#releaseServer(true);
    }
  }

  #onServerLost(): void {
    this.#server = undefined;
    this.terminate({
      severity: "FATAL",
      code: "08006",
      message: "pgbind: the connection to the database was lost; reconnect and retry",
    });
  }

  #releaseServer(reusable: boolean): void {
    const server = this.#server;
    const binding = this.#binding;
    if (!server || !binding) return;
    this.#server = undefined;
    server.detach();
    this.#armIdleTimer();
    // Session mode hands the whole session over, so the next client gets a clean one (PgBouncer's
    // server_reset_query); in transaction mode only a SET outside a transaction needs undoing.
    const reset =
      binding.config.poolMode === "session" ? "DISCARD ALL" : this.#dirty ? "RESET ALL" : undefined;
    if (!reusable || reset === undefined) {
      binding.pool.release(server, reusable);
      return;
    }
    this.#dirty = false;
    server.runInternal(reset).then((ok) => {
      server.resetSettings();
      if (reset === "DISCARD ALL") server.prepared.clear();
      binding.pool.release(server, ok);
    });
  }

  /** Closes the client; `flush` lets what is still queued for it (e.g. a FATAL ErrorResponse) go out first. */
  #close(flush = true): void {
    if (this.#state === "closed") return;
    clearTimeout(this.#idleTimer);
    const wasReady = this.#state === "ready";
    this.#state = "closed";
    clearTimeout(this.#loginTimer);
    // Mid-transaction, the server's session state is unknown: do not give it to the next client.
    const clean =
      this.#outstanding === 0 &&
      !this.#unsynced &&
      this.#hiddenReplies === 0 &&
      this.#txStatus === TransactionStatus.Idle &&
      this.#walker.atBoundary;
    this.#releaseServer(clean);
    if (wasReady) {
      this.#host.unregister(this);
      this.#binding?.sessionClosed(this);
    }
    if (!flush) {
      this.#socket.destroy();
      return;
    }
    this.#socket.end();
    this.#socket.destroySoon?.();
  }
}

function originUnavailable(error: Error): ErrorFields {
  return {
    severity: "FATAL",
    code: "08006",
    message: `pgbind: cannot reach the database: ${error.message}`,
  };
}

/** Constant-time comparison of cancel keys. */
export function sameKey(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The bytes of `out` as one view of the received chunk, when its items are unchanged frames lying back
 * to back in it (a typical extended-protocol round: Parse/Bind/Describe/Execute/Sync forwarded as read):
 * written as they came, without copying them into a new buffer. Each header is checked in place, since a
 * frame assembled across chunks has its payload in memory of its own, with unrelated bytes before it.
 */
function contiguousFrames(out: readonly (Buffer | Frame)[], total: number): Buffer | undefined {
  const first = out[0] as Buffer | Frame;
  if (!("payload" in first)) return undefined;
  const memory = first.payload.buffer;
  const start = first.payload.byteOffset - 5;
  if (start < 0 || start + total > memory.byteLength) return undefined;
  const whole = Buffer.from(memory, start, total);
  let at = 0;
  for (const item of out) {
    if (
      !("payload" in item) ||
      item.payload.buffer !== memory ||
      item.payload.byteOffset !== start + at + 5 ||
      whole[at] !== item.code ||
      whole.readInt32BE(at + 1) !== item.length
    ) {
      return undefined;
    }
    at += 5 + item.payload.length;
  }
  return at === total ? whole : undefined;
}
