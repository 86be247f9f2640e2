import { type Binding, type ManagedBinding, type SslMode, validateBinding } from "./binding.js";
import { PostgresConnection, type SslConfig, sslFor } from "./connection.js";
import { PgBindError } from "./errors.js";
import { type RetryOptions, withRetry } from "./retry.js";
import type { ResolvedSecret, SecretStoreOptions } from "./secrets/types.js";
import { type BindingEnv, checkBindingName, findBinding } from "./sources.js";

/** Settings shared by every resolution; each can also be given per call. */
export interface ResolverOptions {
  /** Read bindings from this object instead of `process.env` (edge runtimes pass their `env`). */
  readonly env?: BindingEnv;
  /** Kubernetes Service Binding root; default `$SERVICE_BINDING_ROOT` from the env. */
  readonly serviceBindingRoot?: string;
  /** Client settings for the cloud secret stores. */
  readonly secretStores?: SecretStoreOptions;
  /** Retry of retryable secret-store failures; default 4 attempts, 100 ms doubling to 2 s, full jitter. */
  readonly retry?: RetryOptions;
  /** How long one secret-store attempt may take before it counts as a (retryable) failure, default 10 s. */
  readonly secretTimeoutMs?: number;
  /** How long a resolved secret is reused, default 60 s. 0 disables the cache. */
  readonly secretCacheTtlMs?: number;
  /** How long an `sslmode=prefer` TLS probe may keep trying to reach the server, default 30 s. */
  readonly preferProbeTimeoutMs?: number;
}

/** Options for one {@link BindingResolver.getPostgresConnection} call. */
export interface GetPostgresConnectionOptions extends ResolverOptions {
  /** Re-read the password from the secret store instead of the cache (after a rotation). */
  readonly refresh?: boolean;
}

interface CacheEntry {
  readonly promise: Promise<ResolvedSecret>;
  settled: boolean;
  expiresAt: number;
}

/**
 * Resolves bindings, caching cloud secrets briefly with single-flight (concurrent callers share one
 * fetch). Create one per isolation domain; the module-level `getPostgresConnection` uses a default one.
 */
export class BindingResolver {
  readonly #defaults: ResolverOptions;
  readonly #secrets = new Map<string, CacheEntry>();

  constructor(options: ResolverOptions = {}) {
    this.#defaults = options;
  }

  /** Resolves binding `name` into a connection. Throws {@link PgBindError}. */
  async getPostgresConnection(
    name: string,
    options: GetPostgresConnectionOptions = {},
  ): Promise<PostgresConnection> {
    const opts: GetPostgresConnectionOptions = { ...this.#defaults, ...options };
    checkBindingName(name);
    const env = opts.env ?? ambientEnv();
    const raw = await findBinding(name, env, opts.serviceBindingRoot);
    const binding = validateBinding(name, raw.source, raw.value);
    const { password, username } = await this.#credentials(name, binding, opts);
    const { sslmode, ca } = tlsPolicy(binding);
    const ssl: SslConfig =
      sslmode === "prefer"
        ? // Loaded only for prefer bindings: it needs raw TCP sockets, which edge runtimes lack.
          (await (
            await import("./probe.js")
          ).probeServerTls(name, binding.host, binding.port, opts.preferProbeTimeoutMs ?? 30_000))
          ? { rejectUnauthorized: false }
          : false
        : sslFor(sslmode, ca);
    return new PostgresConnection({
      host: binding.host,
      port: binding.port,
      database: binding.database,
      username,
      password,
      sslmode,
      ssl,
    });
  }

  /** Forgets cached secrets, so the next resolution reads every store again. */
  clearCache(): void {
    this.#secrets.clear();
  }

  async #credentials(
    name: string,
    binding: Binding,
    opts: GetPostgresConnectionOptions,
  ): Promise<{ password: string; username: string }> {
    switch (binding.service) {
      case "local":
      case "external":
      case "gateway":
        return { password: binding.password, username: binding.username };
      case "aurora":
      case "cloud-sql":
      case "flexible-server": {
        const secret = await this.#cachedSecret(name, binding, opts);
        // An RDS-managed secret names its user; after an alternating-users rotation that user changes.
        return { password: secret.password, username: secret.username ?? binding.username };
      }
      default: {
        const exhaustive: never = binding;
        throw new Error(`unhandled service ${JSON.stringify(exhaustive)}`);
      }
    }
  }

  #cachedSecret(
    name: string,
    binding: ManagedBinding,
    opts: GetPostgresConnectionOptions,
  ): Promise<ResolvedSecret> {
    const key = secretKey(binding);
    const ttl = opts.secretCacheTtlMs ?? 60_000;
    const now = Date.now();
    const cached = this.#secrets.get(key);
    if (cached && (!cached.settled || (!opts.refresh && cached.expiresAt > now))) return cached.promise;

    const stores = opts.secretStores ?? {};
    const timeoutMs = opts.secretTimeoutMs ?? 10_000;
    const promise = withRetry(
      () => withTimeout(fetchSecret(name, binding, stores), timeoutMs, name, binding),
      opts.retry,
    );
    const entry: CacheEntry = { promise, settled: false, expiresAt: 0 };
    this.#secrets.set(key, entry);
    promise.then(
      () => {
        entry.settled = true;
        entry.expiresAt = Date.now() + ttl;
        if (ttl <= 0 && this.#secrets.get(key) === entry) this.#secrets.delete(key);
      },
      () => {
        if (this.#secrets.get(key) === entry) this.#secrets.delete(key);
      },
    );
    return promise;
  }
}

async function fetchSecret(
  name: string,
  binding: ManagedBinding,
  stores: SecretStoreOptions,
): Promise<ResolvedSecret> {
  switch (binding.service) {
    case "aurora":
      return (await import("./secrets/aws.js")).fetchAuroraSecret(name, binding, stores);
    case "cloud-sql":
      return (await import("./secrets/gcp.js")).fetchCloudSqlSecret(name, binding, stores);
    case "flexible-server":
      return (await import("./secrets/azure.js")).fetchFlexibleServerSecret(name, binding, stores);
    default: {
      const exhaustive: never = binding;
      throw new Error(`unhandled service ${JSON.stringify(exhaustive)}`);
    }
  }
}

function withTimeout<T>(task: Promise<T>, ms: number, name: string, binding: ManagedBinding): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new PgBindError(
            "POSTGRES_SECRET_RESOLUTION_ERROR",
            `binding "${name}" (service ${binding.service}): the secret store did not answer within ${ms} ms`,
            { bindingName: name, retryable: true },
          ),
        ),
      ms,
    );
  });
  return Promise.race([task, timeout]).finally(() => clearTimeout(timer));
}

function secretKey(binding: ManagedBinding): string {
  switch (binding.service) {
    case "aurora":
      return `aws:${binding.passwordSecretArn}`;
    case "cloud-sql":
      return `gcp:${binding.passwordSecretName}`;
    case "flexible-server":
      return `azure:${binding.passwordSecretUri}`;
    default: {
      const exhaustive: never = binding;
      throw new Error(`unhandled service ${JSON.stringify(exhaustive)}`);
    }
  }
}

/** The sslmode each service uses and the CA it trusts (see the binding contract in the README). */
export function tlsPolicy(binding: Binding): {
  sslmode: SslMode;
  ca: string | string[] | undefined;
} {
  switch (binding.service) {
    case "local":
      return { sslmode: "disable", ca: undefined };
    case "external":
      return { sslmode: binding.sslmode ?? "prefer", ca: binding.sslrootcert };
    case "gateway":
      return { sslmode: binding.sslmode ?? "require", ca: binding.sslrootcert };
    case "aurora":
      return binding.sslrootcert === undefined
        ? { sslmode: "require", ca: undefined }
        : { sslmode: "verify-full", ca: binding.sslrootcert };
    case "cloud-sql":
      // Cloud SQL server certificates name the instance, not the host dialled: verify the chain only.
      return binding.serverCaCertificates === undefined
        ? { sslmode: "require", ca: undefined }
        : { sslmode: "verify-ca", ca: [...binding.serverCaCertificates] };
    case "flexible-server":
      return { sslmode: "require", ca: undefined };
    default: {
      const exhaustive: never = binding;
      throw new Error(`unhandled service ${JSON.stringify(exhaustive)}`);
    }
  }
}

function ambientEnv(): BindingEnv {
  const proc = (globalThis as { process?: { env?: BindingEnv } }).process;
  return proc?.env ?? {};
}
