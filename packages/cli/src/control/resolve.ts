import path from "node:path";
import {
  type BindingEnv,
  BindingResolver,
  bindingEnvName,
  type GatewayBinding,
  isPgBindError,
  type PostgresConnection,
  pgConfig,
  SSL_MODES,
} from "@pgbind/sdk";
import pg from "pg";
import { CliError, EXIT } from "../errors.js";
import type { ControlClient } from "./client.js";
import { credentialCacheFile, readCachedCredential, writeCachedCredential } from "./credential-cache.js";
import type { GatewayInfo } from "./types.js";

/** How long a freshly minted credential may take to reach the gateway before serving starts anyway. */
const ACCEPT_WAIT_MS = 10_000;

/** True once a login with `connection` succeeds (retried until `timeoutMs`). */
async function gatewayAccepts(connection: PostgresConnection, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Not a spread: pgConfig keeps the password non-enumerable (so logging the config never shows it).
    const client = new pg.Client(Object.assign(pgConfig(connection), { connectionTimeoutMillis: 2_000 }));
    client.on("error", () => {});
    try {
      await client.connect();
      await client.end();
      return true;
    } catch {
      await client.end().catch(() => {});
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** A binding resolved through the control plane. */
export interface ControlResolvedBinding {
  /** `PGBIND_<NAME>_BINDING` and its value: a `gateway` binding, to inject into a process. */
  readonly variable: string;
  readonly value: string;
  readonly connection: PostgresConnection;
  /** The config the binding names and the credential in use, for following rotations. */
  readonly configId: string;
  readonly credentialId: string;
}

/**
 * Resolves manifest ids against one control plane: the gateway address is asked once, credentials
 * are reused from `.pgbind/control/credentials/<configId>.json` while the control plane still lists
 * them active, else minted and cached.
 */
export class ControlBindingResolver {
  readonly #client: ControlClient;
  readonly #cwd: string;
  readonly #log: (message: string) => void;
  #gateway: Promise<GatewayInfo> | undefined;

  constructor(client: ControlClient, cwd: string, log: (message: string) => void = () => {}) {
    this.#client = client;
    this.#cwd = cwd;
    this.#log = log;
  }

  get url(): string {
    return this.#client.url;
  }

  /**
   * Messages do not name the binding: callers prefix it.
   * @throws CliError: `NOT_FOUND` (exit 2) naming the id, `BINDING_UNAVAILABLE` when
   *   the control plane has no gateway address, or the client's errors.
   */
  async resolve(binding: string, id: string): Promise<ControlResolvedBinding> {
    let config: { id: string; name: string };
    try {
      ({ config } = await this.#client.getConfig(id));
    } catch (error) {
      if (error instanceof CliError && error.code === "NOT_FOUND")
        throw new CliError(
          "NOT_FOUND",
          `the control plane at ${this.url} has no config with id "${id}"; see \`pgbind configs list\` for the ids, or create one with \`pgbind configs create\` and put its id in w7s.json`,
          { exitCode: EXIT.usage },
        );
      throw error;
    }
    const gateway = await this.#gatewayInfo();
    const credential = await this.#credential(config.id);
    this.#log(
      `${binding}: config ${config.name} (${config.id}) from ${this.url}, gateway ${gateway.host}:${gateway.port}, credential ${credential.id} (${credential.how})`,
    );
    const value: GatewayBinding = {
      service: "gateway",
      host: gateway.host,
      port: gateway.port,
      database: config.id,
      username: credential.user,
      password: credential.password,
      ...((SSL_MODES as readonly string[]).includes(gateway.sslmode) ? { sslmode: gateway.sslmode } : {}),
    };
    const variable = bindingEnvName(binding);
    const text = JSON.stringify(value);
    const env: BindingEnv = { [variable]: text };
    try {
      const connection = await new BindingResolver({ env }).getPostgresConnection(binding);
      // Gateways learn of a new credential through the registry's change feed, within moments: wait for
      // that, so the backend's first query does not race it.
      if (credential.how !== "reused" && !(await gatewayAccepts(connection, ACCEPT_WAIT_MS)))
        this.#log(
          `${binding}: the gateway at ${gateway.host}:${gateway.port} did not accept the new credential within ${ACCEPT_WAIT_MS / 1000} s; is it running on the same registry?`,
        );
      return { variable, value: text, connection, configId: config.id, credentialId: credential.id };
    } catch (error) {
      if (!isPgBindError(error)) throw error;
      throw new CliError(
        "BINDING_UNAVAILABLE",
        `the gateway binding built from ${this.url} does not resolve: ${error.code}: ${error.message}`,
        { exitCode: error.code === "DATABASE_UNREACHABLE" ? EXIT.failed : EXIT.usage },
      );
    }
  }

  /** True while `credentialId` is still listed as active for `configId` (not rotated out, revoked or expired). */
  async isActive(configId: string, credentialId: string): Promise<boolean> {
    const { credentials } = await this.#client.listCredentials(configId);
    return credentials.some((c) => c.id === credentialId && c.status === "active");
  }

  #gatewayInfo(): Promise<GatewayInfo> {
    this.#gateway ??= this.#client.info().then((info) => {
      if (info.gateway === null || info.gateway === undefined)
        throw new CliError(
          "BINDING_UNAVAILABLE",
          `the control plane at ${this.url} does not know where the gateway is; restart it with \`pgbind control --gateway-url postgres://<gateway-host>:6432\``,
        );
      return info.gateway;
    });
    return this.#gateway;
  }

  async #credential(configId: string): Promise<{ id: string; user: string; password: string; how: string }> {
    const cached = await readCachedCredential(this.#cwd, configId, this.url);
    if (cached !== undefined) {
      const { credentials } = await this.#client.listCredentials(configId);
      const listed = credentials.find((c) => c.id === cached.credentialId);
      if (listed?.status === "active" && listed.user === cached.user)
        return { id: cached.credentialId, user: cached.user, password: cached.password, how: "reused" };
    }
    const minted = await this.#client.mintCredential(configId);
    const fresh = {
      credentialId: minted.credential.id,
      configId,
      user: minted.credential.user,
      password: minted.password,
      controlUrl: this.url,
      createdAt: minted.credential.createdAt,
    };
    let file: string;
    try {
      file = await writeCachedCredential(this.#cwd, fresh);
    } catch (error) {
      // Without the cache every start would mint another credential: say so rather than pile them up.
      throw new CliError(
        "COMMAND_FAILED",
        `minted credential ${minted.credential.id} but cannot cache it in ${credentialCacheFile(this.#cwd, configId)} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); make .pgbind/control/credentials/ writable, or revoke it with \`pgbind credentials revoke ${configId} ${minted.credential.id}\``,
      );
    }
    return {
      id: minted.credential.id,
      user: minted.credential.user,
      password: minted.password,
      how: `minted, cached in ${path.relative(this.#cwd, file) || file}`,
    };
  }
}
