import type net from "node:net";
import {
  BackendMessage,
  buildPasswordMessage,
  buildQuery,
  buildSASLInitialResponse,
  buildSASLResponse,
  buildStartupMessage,
  type ErrorFields,
  type Frame,
  MessageFramer,
  md5PasswordHash,
  parseAuthentication,
  parseBackendKeyData,
  parseErrorResponse,
  parseParameterStatus,
  ScramClientSession,
  type ScramKeyCache,
  TERMINATE,
  TransactionStatus,
} from "@pgbind/protocol";
import type { OriginConfig } from "./config.js";
import { nativeSocketLayer, type RelaySocket } from "./native-sockets.js";
import { connectTcp, negotiateOriginTls, OriginConnectError, withConnectRetry } from "./origin-socket.js";
import type { Poolable } from "./pool.js";
import { ResponseWalker } from "./response-walker.js";
import { type RelayWriter, relayWriter } from "./socket-writes.js";
import { type TrackedParameter, trackedValues } from "./tracked-parameters.js";

/** SQLSTATEs that mean "the origin is not ready yet; try again" (starting up, shutting down, too many connections). */
const RETRYABLE_SQLSTATES = new Set(["57P03", "57P01", "53300", "08006"]);

/** Receives a server connection's traffic while a client holds it. */
export interface ServerListener {
  onData(chunk: Buffer): void;
  onClose(error: Error | undefined): void;
}

let nextId = 1;

/**
 * One authenticated connection to the origin. Created by {@link ServerConnection.connect}, pooled,
 * and attached to one client at a time, which gets its raw byte stream.
 */
export class ServerConnection implements Poolable {
  readonly id = nextId++;
  readonly socket: RelaySocket;
  readonly #writer: RelayWriter;
  /** ParameterStatus values the origin reported at start-up. */
  readonly parameters: ReadonlyMap<string, string>;
  readonly processId: number;
  readonly secretKey: Buffer;
  readonly origin: OriginConfig;
  readonly createdAt = Date.now();
  /** Statements prepared on this connection by the gateway (server names), shared by its clients. */
  readonly prepared = new Set<string>();
  /**
   * The tracked parameters' values on this session now: what it started with, updated by what the
   * gateway SET for a client and what the server reported while a client held it.
   */
  readonly settings: Map<TrackedParameter, string>;
  /** The tracked parameters' start-up values, which RESET ALL and DISCARD ALL return to. */
  readonly #initialSettings: ReadonlyMap<TrackedParameter, string>;
  #listener: ServerListener | undefined;
  #usable = true;

  /** Use {@link ServerConnection.connect}. @internal */
  constructor(
    socket: RelaySocket,
    origin: OriginConfig,
    parameters: Map<string, string>,
    key: { processId: number; secretKey: Buffer },
  ) {
    this.socket = socket;
    this.#writer = relayWriter(socket);
    this.origin = origin;
    this.parameters = parameters;
    this.processId = key.processId;
    this.secretKey = key.secretKey;
    this.#initialSettings = trackedValues(parameters);
    this.settings = new Map(this.#initialSettings);
    socket.on("data", (chunk: Buffer) => {
      if (this.#listener) this.#listener.onData(chunk);
      // Idle: a server only speaks unprompted to report trouble (e.g. admin shutdown); stop using it.
      else this.#usable = false;
    });
    socket.on("error", () => {
      this.#usable = false;
    });
    // The origin closed its side (restart, failover, a proxy cutting idle connections): 'close' follows
    // only after our own end is written, and a connection handed out in between fails its client's query.
    socket.on("end", () => {
      this.#usable = false;
    });
    socket.on("close", () => {
      this.#usable = false;
      const listener = this.#listener;
      this.#listener = undefined;
      listener?.onClose(new Error("the origin closed the server connection"));
    });
  }

  /**
   * Connects, negotiates TLS per sslmode and authenticates (SCRAM-SHA-256, MD5 or cleartext), retrying
   * transient failures until `timeoutMs` has passed.
   */
  static connect(
    origin: OriginConfig,
    options: { timeoutMs: number; applicationName?: string; scramCache?: ScramKeyCache },
  ): Promise<ServerConnection> {
    return withConnectRetry(async (remainingMs) => {
      const attemptMs = Math.min(remainingMs, 10_000);
      const tcp = await connectTcp(origin.host, origin.port, attemptMs);
      const socket = await negotiateOriginTls(tcp, origin, attemptMs);
      try {
        return await startup(socket, origin, options, attemptMs);
      } catch (error) {
        socket.destroy();
        throw error;
      }
    }, options.timeoutMs);
  }

  get usable(): boolean {
    return this.#usable && !this.socket.destroyed;
  }

  /** Hands the byte stream to a client session. */
  attach(listener: ServerListener): void {
    this.#listener = listener;
  }

  detach(): void {
    this.#listener = undefined;
    if (this.socket.isPaused()) this.socket.resume();
  }

  write(data: Buffer): boolean {
    return this.#writer.write(data);
  }

  /**
   * Runs a statement for the gateway itself (e.g. a reset before the next client), consuming its
   * responses. Resolves true when it ended in ReadyForQuery with status idle; false (and the connection
   * is marked unusable) on any error.
   */
  runInternal(sql: string, timeoutMs = 5_000): Promise<boolean> {
    return new Promise((resolve) => {
      const walker = new ResponseWalker();
      let failed = false;
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.#listener = undefined;
        if (!ok) this.#usable = false;
        resolve(ok);
      };
      this.#listener = {
        onData: (chunk) => {
          walker.walk(chunk, (code) => {
            if (code === BackendMessage.ErrorResponse) failed = true;
            return true;
          });
          if (walker.readyCount > 0 && walker.atBoundary)
            finish(!failed && walker.readyStatus === TransactionStatus.Idle);
        },
        onClose: () => finish(false),
      };
      this.socket.write(buildQuery(sql));
    });
  }

  /** After RESET ALL or DISCARD ALL: the tracked parameters are back to their start-up values. */
  resetSettings(): void {
    this.settings.clear();
    for (const [name, value] of this.#initialSettings) this.settings.set(name, value);
  }

  /** Marks the connection as not reusable (its session state is unknown). */
  discard(): void {
    this.#usable = false;
  }

  close(): void {
    this.#usable = false;
    this.#listener = undefined;
    if (!this.socket.destroyed) this.socket.end(TERMINATE);
    this.socket.destroySoon?.();
  }
}

function startup(
  socket: net.Socket,
  origin: OriginConfig,
  options: { applicationName?: string; scramCache?: ScramKeyCache },
  timeoutMs: number,
): Promise<ServerConnection> {
  return new Promise((resolve, reject) => {
    const framer = new MessageFramer();
    const parameters = new Map<string, string>();
    let key: { processId: number; secretKey: Buffer } | undefined;
    let scram: ScramClientSession | undefined;
    let settled = false;
    const timer = setTimeout(
      () => fail(new OriginConnectError("the origin did not finish start-up in time", true)),
      timeoutMs,
    );

    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.removeListener("error", onError);
      socket.removeListener("close", onClose);
    };
    const onError = (cause: Error) =>
      fail(new OriginConnectError(`origin connection failed: ${cause.message}`, true, { cause }));
    const onClose = () =>
      fail(new OriginConnectError("the origin closed the connection during start-up", true));

    const handle = async (frame: Frame): Promise<void> => {
      switch (frame.code) {
        case BackendMessage.Authentication: {
          const auth = parseAuthentication(frame);
          switch (auth.type) {
            case "Ok":
              return;
            case "CleartextPassword":
              socket.write(buildPasswordMessage(origin.password));
              return;
            case "MD5Password":
              socket.write(buildPasswordMessage(md5PasswordHash(origin.user, origin.password, auth.salt)));
              return;
            case "SASL": {
              scram = new ScramClientSession(
                origin.password,
                options.scramCache ? { cache: options.scramCache } : {},
              );
              const first = scram.clientFirst(auth.mechanisms);
              socket.write(buildSASLInitialResponse(first.mechanism, first.data));
              return;
            }
            case "SASLContinue":
              if (!scram) throw new OriginConnectError("the origin sent SASLContinue before SASL", false);
              socket.write(buildSASLResponse(await scram.handleServerFirstAsync(auth.data)));
              return;
            case "SASLFinal":
              // Proves the origin knows the password too: a man in the middle cannot fake this.
              scram?.verifyServerFinal(auth.data);
              return;
            default:
              throw new OriginConnectError(
                `the origin asks for ${auth.type} authentication, which the gateway does not support`,
                false,
              );
          }
        }
        case BackendMessage.ParameterStatus: {
          const { name, value } = parseParameterStatus(frame);
          parameters.set(name, value);
          return;
        }
        case BackendMessage.BackendKeyData:
          key = parseBackendKeyData(frame);
          return;
        case BackendMessage.NoticeResponse:
        case BackendMessage.NegotiateProtocolVersion:
          return;
        case BackendMessage.ErrorResponse: {
          const fields = parseErrorResponse(frame);
          throw originError(origin, fields);
        }
        case BackendMessage.ReadyForQuery:
          if (!settled) {
            settled = true;
            cleanup();
            resolve(
              new ServerConnection(
                // Past start-up the connection only relays: the native layer serves it if it can.
                nativeSocketLayer()?.adopt(socket) ?? socket,
                origin,
                parameters,
                key ?? { processId: 0, secretKey: Buffer.alloc(4) },
              ),
            );
          }
          return;
        default:
          throw new OriginConnectError(
            `unexpected message ${String.fromCharCode(frame.code)} from the origin during start-up`,
            false,
          );
      }
    };

    // Start-up is strictly request/response, so frames are handled one at a time, in order.
    let queue = Promise.resolve();
    const onData = (chunk: Buffer) => {
      try {
        framer.push(chunk, (frame) => {
          const copy = { code: frame.code, length: frame.length, payload: Buffer.from(frame.payload) };
          queue = queue
            .then(() => (settled ? undefined : handle(copy)))
            .catch((error: Error) => fail(toConnectError(error)));
        });
      } catch (error) {
        fail(toConnectError(error as Error));
      }
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    const params: Record<string, string> = { user: origin.user, database: origin.database };
    if (options.applicationName) params.application_name = options.applicationName;
    socket.write(buildStartupMessage(params));
  });
}

function originError(origin: OriginConfig, fields: ErrorFields): OriginConnectError {
  const retryable = RETRYABLE_SQLSTATES.has(fields.code);
  return new OriginConnectError(
    `the origin ${origin.host}:${origin.port} refused the connection: ${fields.message} (SQLSTATE ${fields.code})`,
    retryable,
    { sqlstate: fields.code },
  );
}

function toConnectError(error: Error): OriginConnectError {
  return error instanceof OriginConnectError
    ? error
    : new OriginConnectError(error.message, false, { cause: error });
}
