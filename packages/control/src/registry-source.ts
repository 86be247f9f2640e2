import type { ConfigSource, GatewayConfig } from "@pgbind/gateway";
import pg from "pg";
import { ControlError } from "./errors.js";
import { REGISTRY_CHANNEL, Registry } from "./registry.js";
import { SecretBox } from "./secret-box.js";
import { describeStore, scrub, urlPassword } from "./store-url.js";

export interface RegistryConfigSourceOptions {
  /** The registry store's PostgreSQL URL (what `pgbind control` reports as its store). */
  readonly store: string;
  /** The control plane's master key, to decrypt origin passwords. */
  readonly masterKey: Uint8Array;
  /** Safety-net re-read interval, default 30 s (a missed notification costs at most this long). */
  readonly pollIntervalMs?: number;
  /** Notifications within this window cause one reload, default 50 ms. */
  readonly debounceMs?: number;
}

type Listener = Parameters<ConfigSource["watch"]>[0];

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A gateway's bindings from the control plane's registry (`pgbind gateway --store postgres://…`).
 * `watch` LISTENs on the registry channel and reloads on every change, after reconnecting, every
 * 30 s, and when the next credential expires, so an ended rotation grace period takes effect on time.
 */
export class RegistryConfigSource implements ConfigSource {
  readonly description: string;
  readonly #store: string;
  readonly #secret: string | undefined;
  readonly #masterKey: Uint8Array;
  readonly #pollIntervalMs: number;
  readonly #debounceMs: number;
  #pool: pg.Pool | undefined;
  #registry: Registry | undefined;
  #keyVerified = false;
  #watchers = 0;

  constructor(options: RegistryConfigSourceOptions) {
    this.#store = options.store;
    this.#secret = urlPassword(options.store);
    this.#masterKey = options.masterKey;
    this.#pollIntervalMs = options.pollIntervalMs ?? 30_000;
    this.#debounceMs = options.debounceMs ?? 50;
    this.description = `registry ${describeStore(options.store)}`;
    // Fails now, not at the first load, when the key is malformed.
    new SecretBox(options.masterKey);
  }

  /** The current bindings. Errors are {@link ControlError}s whose messages hold no secret. */
  async load(): Promise<GatewayConfig> {
    const registry = this.#open();
    try {
      if (!this.#keyVerified) {
        await registry.verifyMasterKey();
        this.#keyVerified = true;
      }
      return await registry.loadGatewayConfig();
    } catch (error) {
      throw this.#safe(error);
    }
  }

  /** Follows the registry until the returned function is called; that function stops every timer and connection. */
  watch(onChange: Listener): () => void {
    let stopped = false;
    let listener: pg.Client | undefined;
    let attempt = 0;
    let debounce: NodeJS.Timeout | undefined;
    let reconnect: NodeJS.Timeout | undefined;
    let expiry: NodeJS.Timeout | undefined;
    let loading = false;
    let again = false;

    const emit = (result: Parameters<Listener>[0]) => {
      if (stopped) return;
      try {
        onChange(result);
      } catch {
        // The listener's own failure is not ours to report, and must not stop the watch.
      }
    };
    // Not reset by later notifications, so a steady stream of changes cannot postpone reloads forever.
    const reload = () => {
      if (stopped || debounce !== undefined) return;
      debounce = setTimeout(() => {
        debounce = undefined;
        void run();
      }, this.#debounceMs);
    };
    // One load at a time; a change during a load triggers another, so the last result is current.
    const run = async () => {
      if (loading) {
        again = true;
        return;
      }
      loading = true;
      try {
        const config = await this.load();
        emit({ config });
        scheduleExpiry(config);
      } catch (error) {
        emit({ error: error as Error });
      } finally {
        loading = false;
        if (again && !stopped) {
          again = false;
          void run();
        }
      }
    };
    const scheduleExpiry = (config: GatewayConfig) => {
      clearTimeout(expiry);
      if (stopped) return;
      const now = Date.now();
      let next = Number.POSITIVE_INFINITY;
      for (const binding of config.bindings) {
        for (const credential of binding.credentials) {
          const at = credential.expiresAt?.getTime();
          if (at !== undefined && at > now && at < next) next = at;
        }
      }
      if (next === Number.POSITIVE_INFINITY) return;
      // A little after the instant, so the store's now() has passed it too.
      expiry = setTimeout(reload, Math.min(next - now + 25, MAX_TIMER_MS));
    };
    const connect = async () => {
      if (stopped) return;
      const client = new pg.Client({
        connectionString: this.#store,
        application_name: "pgbind-registry-listen",
      });
      listener = client;
      let failed = false;
      const fail = (error: Error) => {
        if (failed || stopped) return;
        failed = true;
        if (listener === client) listener = undefined;
        client.end().catch(() => {});
        emit({ error: this.#safe(error, "the change feed is down (reconnecting)") });
        const delay = Math.min(250 * 2 ** attempt, 10_000) * (0.5 + Math.random() / 2);
        attempt++;
        reconnect = setTimeout(() => void connect(), delay);
      };
      client.on("error", fail);
      client.on("end", () => fail(new Error("the connection to the registry store ended")));
      client.on("notification", (message) => {
        if (message.channel === REGISTRY_CHANNEL) reload();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${REGISTRY_CHANNEL}`);
      } catch (error) {
        fail(error as Error);
        return;
      }
      if (stopped || failed) return;
      attempt = 0;
      // Changes made while we were not listening (or before the first LISTEN) are picked up here.
      reload();
    };

    const poll = setInterval(reload, this.#pollIntervalMs);
    this.#watchers++;
    void connect();

    return () => {
      if (stopped) return;
      stopped = true;
      clearInterval(poll);
      clearTimeout(debounce);
      clearTimeout(reconnect);
      clearTimeout(expiry);
      listener?.end().catch(() => {});
      listener = undefined;
      // The load connections are shared by every watch of this source: the last one out closes them.
      if (--this.#watchers === 0) void this.close();
    };
  }

  /** Ends the connections used by {@link load}. A later load opens new ones. */
  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    this.#registry = undefined;
    await pool?.end().catch(() => {});
  }

  #open(): Registry {
    if (!this.#registry || !this.#pool) {
      const pool = new pg.Pool({
        connectionString: this.#store,
        max: 2,
        application_name: "pgbind-registry",
        connectionTimeoutMillis: 10_000,
        idleTimeoutMillis: 30_000,
        allowExitOnIdle: true,
      });
      // An idle connection dropped by the store must not crash the gateway; the next load reconnects.
      pool.on("error", () => {});
      this.#pool = pool;
      this.#registry = new Registry({
        pool,
        masterKey: this.#masterKey,
        probe: false,
        storeName: describeStore(this.#store),
      });
    }
    return this.#registry;
  }

  /** A ControlError naming the store, without its password and without the original (which may carry it). */
  #safe(error: unknown, context?: string): ControlError {
    const message = scrub(error instanceof Error ? error.message : String(error), this.#secret);
    const code = error instanceof ControlError ? error.code : "STORE_UNAVAILABLE";
    const prefix = context ? `${this.description}: ${context}: ` : "";
    return new ControlError(code, `${prefix}${message}`);
  }
}
