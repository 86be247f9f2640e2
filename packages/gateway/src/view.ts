import type { Timeouts } from "./config.js";
import type { PoolStats } from "./pool.js";

/** A read-only snapshot interface over a running gateway, for the admin console and metrics. */
export interface GatewayView {
  readonly startedAt: number;
  readonly listen: { readonly host: string; readonly port: number };
  readonly configSource: string;
  readonly paused: boolean;
  /** Clients must finish start-up and authentication within this many ms (new clients, after a reload). */
  readonly loginTimeoutMs: number;
  bindings(): readonly BindingView[];
  clients(): readonly ClientView[];
  servers(): readonly ServerView[];
  /** Re-reads the config source and applies it (admin RELOAD). */
  reload(): Promise<void>;
  /** Stops handing out server connections in every pool (admin PAUSE); RESUME undoes it. */
  pause(): void;
  resume(): void;
}

export interface BindingView {
  readonly id: string;
  readonly database: string;
  readonly poolMode: "transaction" | "session";
  readonly poolSize: number;
  readonly timeouts: Timeouts;
  readonly origin: {
    readonly host: string;
    readonly port: number;
    readonly database: string;
    readonly user: string;
    readonly sslmode: string;
  };
  readonly pool: PoolStats;
  readonly clients: number;
  readonly transactions: number;
  readonly serverConnects: number;
  readonly serverConnectFailures: number;
}

export interface ClientView {
  readonly processId: number;
  readonly user: string;
  readonly database: string;
  readonly state: "idle" | "active" | "waiting";
  readonly address: string;
  readonly connectedAt: number;
  /** Id of the server connection the client holds, if any. */
  readonly serverId: number | undefined;
}

export interface ServerView {
  readonly id: number;
  readonly database: string;
  readonly state: "active" | "idle";
  readonly origin: string;
  readonly connectedAt: number;
  readonly preparedStatements: number;
}
