import {
  AUTHENTICATION_OK,
  buildParameterStatus,
  parseScramVerifier,
  ScramKeyCache,
  type ScramVerifier,
} from "@pgbind/protocol";
import type { ClientSession } from "./client-session.js";
import type { BindingConfig } from "./config.js";
import { ServerPool } from "./pool.js";
import { ServerConnection } from "./server-connection.js";
import { type TrackedParameter, trackedValues } from "./tracked-parameters.js";

const NO_DEFAULTS: ReadonlyMap<TrackedParameter, string> = new Map();
/** Counters for SHOW STATS and metrics. */
export interface BindingCounters {
  transactions: number;
  serverConnects: number;
  serverConnectFailures: number;
}

/** A binding being served: its config, its server pool, its clients and what the origin reported. */
export class BindingRuntime {
  #config: BindingConfig;
  /** Bumped when the credentials change in place, so connected clients re-check theirs. */
  #generation = 0;
  readonly pool: ServerPool<ServerConnection>;
  readonly clients = new Set<ClientSession>();
  readonly counters: BindingCounters = { transactions: 0, serverConnects: 0, serverConnectFailures: 0 };
  #parameters: ReadonlyMap<string, string> | undefined;
  #greeting: Buffer | undefined;
  #trackedDefaults: ReadonlyMap<TrackedParameter, string> | undefined;
  readonly #verifiers = new Map<string, ScramVerifier>();

  constructor(
    config: BindingConfig,
    options: {
      readonly scramCache?: ScramKeyCache;
      /** Structured log sink; fields never hold secrets. */
      readonly log?: (event: string, fields: Record<string, unknown>) => void;
    } = {},
  ) {
    const scramCache = options.scramCache ?? new ScramKeyCache();
    this.#config = config;
    this.pool = new ServerPool<ServerConnection>({
      size: config.poolSize,
      queryWaitMs: config.timeouts.queryWaitMs,
      idleMs: config.timeouts.idleServerMs,
      lifetimeMs: config.timeouts.serverLifetimeMs,
      connect: async () => {
        try {
          const server = await ServerConnection.connect(config.origin, {
            timeoutMs: config.timeouts.connectMs,
            applicationName: "pgbind",
            scramCache,
          });
          this.counters.serverConnects++;
          this.#parameters ??= server.parameters;
          // A connection the origin dropped frees its pool slot, even one a client session held and
          // never released: otherwise each loss mid-transaction shrinks the pool for good.
          server.socket.once("close", () => this.pool.forget(server));
          return server;
        } catch (error) {
          this.counters.serverConnectFailures++;
          options.log?.("origin_connect_failed", {
            binding: config.id,
            origin: `${config.origin.host}:${config.origin.port}`,
            sqlstate: (error as { sqlstate?: string }).sqlstate,
            error: (error as Error).message,
          });
          throw error;
        }
      },
    });
  }

  /**
   * The ParameterStatus values clients get at start-up: the origin's own, learned from the first server
   * connection (opened now if there is none yet).
   */
  async originParameters(): Promise<ReadonlyMap<string, string>> {
    if (this.#parameters) return this.#parameters;
    const server = await this.pool.acquire();
    this.pool.release(server);
    return server.parameters;
  }

  /**
   * AuthenticationOk and the origin's ParameterStatus messages, the same for every client of the binding;
   * undefined until the first server connection has reported them.
   */
  get greeting(): Buffer | undefined {
    if (this.#greeting || !this.#parameters) return this.#greeting;
    const out: Buffer[] = [AUTHENTICATION_OK];
    // application_name is the client's own, sent per client (with any tracked parameter from its startup
    // packet, which then overrides the origin's value given here).
    for (const [name, value] of this.#parameters)
      if (name !== "application_name") out.push(buildParameterStatus(name, value));
    this.#greeting = Buffer.concat(out);
    return this.#greeting;
  }

  /** The origin's start-up values of the tracked parameters: what a client knows unless it says otherwise. */
  get trackedDefaults(): ReadonlyMap<TrackedParameter, string> {
    if (!this.#trackedDefaults && this.#parameters) this.#trackedDefaults = trackedValues(this.#parameters);
    return this.#trackedDefaults ?? NO_DEFAULTS;
  }

  /** A credential's verifier, parsed once (validating it costs more than the rest of a SCRAM exchange). */
  verifier(text: string): ScramVerifier {
    let parsed = this.#verifiers.get(text);
    if (!parsed) {
      parsed = parseScramVerifier(text);
      this.#verifiers.set(text, parsed);
    }
    return parsed;
  }

  get config(): BindingConfig {
    return this.#config;
  }

  get generation(): number {
    return this.#generation;
  }

  /**
   * Takes a config that differs from the current one only in its credentials (a rotation or a
   * revocation): the pool and its server connections stay, clients re-check their credential at their
   * next transaction.
   */
  replaceCredentials(config: BindingConfig): void {
    this.#config = config;
    this.#generation++;
    this.#verifiers.clear();
  }

  /** True when `config` differs from the current one in nothing but its credentials. */
  onlyCredentialsDiffer(config: BindingConfig): boolean {
    return (
      JSON.stringify({ ...config, credentials: [] }) === JSON.stringify({ ...this.#config, credentials: [] })
    );
  }

  sessionOpened(session: ClientSession): void {
    this.clients.add(session);
  }

  sessionClosed(session: ClientSession): void {
    this.clients.delete(session);
  }

  countTransactions(n: number): void {
    this.counters.transactions += n;
  }

  close(): void {
    this.pool.close();
  }
}
