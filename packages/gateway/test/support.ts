import { createScramVerifier } from "@pgbind/protocol";
import {
  type BindingConfig,
  type ConfigSource,
  DEFAULT_TIMEOUTS,
  Gateway,
  type GatewayConfig,
  type Timeouts,
} from "../src/index.ts";

/** Where a test's origin listens and how the gateway logs into it. */
export interface TestOrigin {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

/** One binding `db` in front of the origin's `postgres` database, for clients `users` with `password`. */
export function testBinding(
  origin: TestOrigin,
  options: {
    password: string;
    users?: string[];
    poolSize?: number;
    timeouts?: Partial<Timeouts>;
    database?: string;
  },
): BindingConfig {
  const database = options.database ?? "db";
  return {
    id: database,
    database,
    credentials: (options.users ?? ["app"]).map((user) => ({
      user,
      scramVerifier: createScramVerifier(options.password),
    })),
    origin: {
      host: origin.host,
      port: origin.port,
      database: "postgres",
      user: origin.user,
      password: origin.password,
      sslmode: "disable",
    },
    poolMode: "transaction",
    poolSize: options.poolSize ?? 2,
    timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts },
  };
}

/** A config source that always answers `config` and never changes. */
export function staticSource(config: GatewayConfig): ConfigSource {
  return { description: "test", load: async () => config, watch: () => () => {} };
}

/** Starts a gateway on a free port serving `bindings`. */
export async function startGateway(
  bindings: BindingConfig[],
  options: { maxClientMessage?: number; loginTimeoutMs?: number } = {},
) {
  const gateway = new Gateway({ port: 0, source: staticSource({ bindings }), ...options });
  const { port } = await gateway.start();
  return { gateway, port };
}
