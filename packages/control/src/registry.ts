import { type BindingConfig, DEFAULT_TIMEOUTS, type GatewayConfig } from "@pgbind/gateway";
import { createScramVerifier } from "@pgbind/protocol";
import type pg from "pg";
import { ensureApiToken, insertApiToken, verifyApiToken } from "./api-tokens.js";
import { ControlError, fromStoreError, isStoreUnavailable } from "./errors.js";
import {
  CREDENTIAL_ID,
  newConfigId,
  newCredentialId,
  newCredentialPassword,
  newCredentialUser,
} from "./ids.js";
import { migrate } from "./migrations.js";
import { type OriginProbe, probeOrigin, type Warning } from "./origin-probe.js";
import {
  CONFIG_COLUMNS,
  type Config,
  type ConfigRow,
  CREDENTIAL_COLUMNS,
  type Credential,
  type CredentialRow,
  checkConfigId,
  configNotFound,
  credentialNotFound,
  type MintedCredential,
  nameConflict,
  originOf,
  sameOrigin,
  toConfig,
  toCredential,
} from "./records.js";
import { SecretBox } from "./secret-box.js";
import {
  applyOriginChanges,
  type ConfigCreateBody,
  type ConfigPatchBody,
  type OriginSettings,
  validateCreate,
  validatePatch,
} from "./validation.js";

export interface RegistryOptions {
  readonly pool: pg.Pool;
  /** 32 bytes; encrypts origin passwords at rest. */
  readonly masterKey: Uint8Array;
  /** Tries the origin at create/update (default {@link probeOrigin}); `false` skips it. */
  readonly probe?: OriginProbe | false;
  /** The store's address for messages, without credentials, e.g. `db.internal:5432/pgbind`. */
  readonly storeName?: string;
}

/** The NOTIFY channel every change is announced on, with the config id as payload. */
export const REGISTRY_CHANNEL = "pgbind_registry";

const KEY_CHECK = "master_key_check";
const KEY_CHECK_TEXT = "pgbind master key check";

/**
 * The registry of binding configs and their credentials, in a PostgreSQL store (schema `pgbind`).
 * Every change runs in one transaction that also notifies {@link REGISTRY_CHANNEL}, so gateways
 * following the store see it. Errors are {@link ControlError}s.
 */
export class Registry {
  readonly #pool: pg.Pool;
  readonly #box: SecretBox;
  readonly #probe: OriginProbe | undefined;
  readonly #store: string;

  constructor(options: RegistryOptions) {
    this.#pool = options.pool;
    this.#box = new SecretBox(options.masterKey);
    this.#probe = options.probe === false ? undefined : (options.probe ?? probeOrigin);
    this.#store = options.storeName ?? "(store)";
  }

  /** Creates or upgrades the `pgbind` schema (safe when several instances start at once). */
  async migrate(): Promise<number[]> {
    try {
      return await migrate(this.#pool);
    } catch (error) {
      throw fromStoreError(error, this.#store);
    }
  }

  /**
   * Checks that the master key is the one the store's secrets were sealed with (`MASTER_KEY_MISMATCH`
   * otherwise). With `record`, a store without a check value gets one sealed with this key.
   */
  async verifyMasterKey(options: { record?: boolean } = {}): Promise<void> {
    await this.#run(async (client) => {
      if (options.record) {
        await client.query(
          "INSERT INTO pgbind.meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
          [KEY_CHECK, this.#box.seal(KEY_CHECK_TEXT, KEY_CHECK)],
        );
      }
      const { rows } = await client.query<{ value: Buffer }>("SELECT value FROM pgbind.meta WHERE key = $1", [
        KEY_CHECK,
      ]);
      const sealed = rows[0]?.value;
      if (sealed) this.#box.open(sealed, KEY_CHECK, `the registry store ${this.#store}'s secrets`);
    });
  }

  /** Validates and stores a config, then tries its origin (see {@link probeOrigin}). */
  async createConfig(body: ConfigCreateBody): Promise<{ config: Config; warnings: Warning[] }> {
    const settings = validateCreate(body);
    const id = newConfigId();
    // Started before the insert so both take the time of the slower one.
    const probing = this.#tryOrigin(settings.origin);
    const { origin } = settings;
    const row = await this.#change(id, async (client) => {
      const { rows } = await client
        .query<ConfigRow>(
          `INSERT INTO pgbind.configs (id, name, origin_host, origin_port, origin_database, origin_user,
             origin_password, sslmode, sslrootcert, pool_mode, pool_size, timeouts)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ${CONFIG_COLUMNS}`,
          [
            id,
            settings.name,
            origin.host,
            origin.port,
            origin.database,
            origin.user,
            this.#box.seal(origin.password, id),
            origin.sslmode,
            origin.sslrootcert ?? null,
            settings.poolMode,
            settings.poolSize,
            JSON.stringify(settings.timeouts),
          ],
        )
        .catch((error: unknown) => {
          throw nameConflict(error, settings.name);
        });
      return rows[0] as ConfigRow;
    });
    return { config: toConfig(row), warnings: await probing };
  }

  /** Every config, sorted by name. */
  async listConfigs(): Promise<Config[]> {
    const rows = await this.#run(
      async (client) =>
        (
          await client.query<ConfigRow>(
            `SELECT ${CONFIG_COLUMNS} FROM pgbind.configs ORDER BY name COLLATE "C"`,
          )
        ).rows,
    );
    return rows.map(toConfig);
  }

  /** One config; `NOT_FOUND` naming the id otherwise. */
  async getConfig(id: string): Promise<Config> {
    checkConfigId(id);
    const row = await this.#run(
      async (client) =>
        (await client.query<ConfigRow>(`SELECT ${CONFIG_COLUMNS} FROM pgbind.configs WHERE id = $1`, [id]))
          .rows[0],
    );
    if (!row) throw configNotFound(id);
    return toConfig(row);
  }

  /**
   * Applies a PATCH body: `origin` fields merge, `connectionString` replaces the origin, `timeouts`
   * merge. Tries the origin again when it changed (a new password counts as a change).
   */
  async updateConfig(id: string, body: ConfigPatchBody): Promise<{ config: Config; warnings: Warning[] }> {
    checkConfigId(id);
    const changes = validatePatch(body);
    let probeTarget: OriginSettings | undefined;
    const row = await this.#change(id, async (client) => {
      const { rows } = await client.query<ConfigRow & { origin_password: Buffer }>(
        `SELECT ${CONFIG_COLUMNS}, origin_password FROM pgbind.configs WHERE id = $1 FOR UPDATE`,
        [id],
      );
      const current = rows[0];
      if (!current) throw configNotFound(id);
      const touchesOrigin = changes.origin !== undefined || changes.replaceOrigin !== undefined;
      const newPassword = changes.replaceOrigin?.password ?? changes.origin?.password;
      const before = originOf(current, () =>
        touchesOrigin && newPassword === undefined ? this.#openPassword(current) : "",
      );
      const after = applyOriginChanges(before, changes);
      const originChanged = newPassword !== undefined || !sameOrigin(before, after);
      if (originChanged) probeTarget = after;
      const timeouts = { ...DEFAULT_TIMEOUTS, ...current.timeouts, ...changes.timeouts };
      const { rows: updated } = await client
        .query<ConfigRow>(
          `UPDATE pgbind.configs SET name = $2, origin_host = $3, origin_port = $4, origin_database = $5,
             origin_user = $6, origin_password = coalesce($7, origin_password), sslmode = $8, sslrootcert = $9,
             pool_mode = $10, pool_size = $11, timeouts = $12, updated_at = now()
           WHERE id = $1 RETURNING ${CONFIG_COLUMNS}`,
          [
            id,
            changes.name ?? current.name,
            after.host,
            after.port,
            after.database,
            after.user,
            newPassword === undefined ? null : this.#box.seal(newPassword, id),
            after.sslmode,
            after.sslrootcert ?? null,
            changes.poolMode ?? current.pool_mode,
            changes.poolSize ?? current.pool_size,
            JSON.stringify(timeouts),
          ],
        )
        .catch((error: unknown) => {
          throw nameConflict(error, changes.name ?? current.name);
        });
      return updated[0] as ConfigRow;
    });
    const warnings = probeTarget ? await this.#tryOrigin(probeTarget) : [];
    return { config: toConfig(row), warnings };
  }

  /** Deletes a config and its credentials. */
  async deleteConfig(id: string): Promise<void> {
    checkConfigId(id);
    await this.#change(id, async (client) => {
      const { rowCount } = await client.query("DELETE FROM pgbind.configs WHERE id = $1", [id]);
      if (!rowCount) throw configNotFound(id);
    });
  }

  /** Mints a credential: a random user and password; only the SCRAM verifier is stored. */
  async mintCredential(configId: string): Promise<MintedCredential> {
    checkConfigId(configId);
    return this.#change(configId, async (client) => {
      await lockConfig(client, configId);
      return insertCredential(client, configId);
    });
  }

  /** A config's credentials, newest first, revoked and expired ones included. */
  async listCredentials(configId: string): Promise<Credential[]> {
    checkConfigId(configId);
    const rows = await this.#run(async (client) => {
      const exists = await client.query("SELECT 1 FROM pgbind.configs WHERE id = $1", [configId]);
      if (!exists.rowCount) throw configNotFound(configId);
      const { rows } = await client.query<CredentialRow>(
        `SELECT ${CREDENTIAL_COLUMNS} FROM pgbind.credentials WHERE config_id = $1 ORDER BY created_at DESC, id DESC`,
        [configId],
      );
      return rows;
    });
    return rows.map(toCredential);
  }

  /**
   * Mints a new credential and gives every `active` one of the config `expiresAt = now + graceSeconds`
   * (status `expiring`), so workloads can move to the new one before the old stop working.
   */
  async rotateCredentials(configId: string, graceSeconds = 3600): Promise<MintedCredential> {
    checkConfigId(configId);
    if (!Number.isInteger(graceSeconds) || graceSeconds < 0) {
      throw new ControlError("INVALID_REQUEST", "graceSeconds must be a non-negative integer", {
        problems: [{ field: "graceSeconds", message: "must be a non-negative integer" }],
      });
    }
    return this.#change(configId, async (client) => {
      await lockConfig(client, configId);
      await client.query(
        `UPDATE pgbind.credentials SET expires_at = now() + make_interval(secs => $2)
         WHERE config_id = $1 AND revoked_at IS NULL AND expires_at IS NULL`,
        [configId, graceSeconds],
      );
      return insertCredential(client, configId);
    });
  }

  /** Revokes a credential (idempotent); gateways refuse it once they reload. */
  async revokeCredential(configId: string, credentialId: string): Promise<Credential> {
    checkConfigId(configId);
    if (!CREDENTIAL_ID.test(credentialId)) throw credentialNotFound(credentialId, configId);
    const row = await this.#change(configId, async (client) => {
      const { rows } = await client.query<CredentialRow>(
        `UPDATE pgbind.credentials SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND config_id = $2 RETURNING ${CREDENTIAL_COLUMNS}`,
        [credentialId, configId],
      );
      if (!rows[0]) throw credentialNotFound(credentialId, configId);
      return rows[0];
    });
    return toCredential(row);
  }

  /**
   * What gateways serve: every config with at least one usable credential (not revoked, not
   * expired), database name = config id, origin password decrypted. A config without usable
   * credentials is left out (no client could log in to it anyway).
   */
  async loadGatewayConfig(): Promise<GatewayConfig> {
    const rows = await this.#run(
      async (client) =>
        (
          await client.query<
            ConfigRow & {
              origin_password: Buffer;
              user_name: string;
              scram_verifier: string;
              expires_at: Date | null;
            }
          >(
            `SELECT c.id, c.origin_host, c.origin_port, c.origin_database, c.origin_user, c.origin_password,
                    c.sslmode, c.sslrootcert, c.pool_mode, c.pool_size, c.timeouts,
                    cr.user_name, cr.scram_verifier, cr.expires_at
             FROM pgbind.configs c
             JOIN pgbind.credentials cr ON cr.config_id = c.id
               AND cr.revoked_at IS NULL AND (cr.expires_at IS NULL OR cr.expires_at > now())
             ORDER BY c.id, cr.created_at, cr.id`,
          )
        ).rows,
    );
    const bindings = new Map<
      string,
      BindingConfig & { credentials: BindingConfig["credentials"][number][] }
    >();
    for (const row of rows) {
      let binding = bindings.get(row.id);
      if (!binding) {
        binding = {
          id: row.id,
          database: row.id,
          credentials: [],
          origin: originOf(row, () => this.#openPassword(row)),
          poolMode: row.pool_mode,
          poolSize: row.pool_size,
          timeouts: { ...DEFAULT_TIMEOUTS, ...row.timeouts },
        };
        bindings.set(row.id, binding);
      }
      binding.credentials.push({
        user: row.user_name,
        scramVerifier: row.scram_verifier,
        ...(row.expires_at ? { expiresAt: row.expires_at } : {}),
      });
    }
    return { bindings: [...bindings.values()] };
  }

  /**
   * Makes sure the store has an API token. When it has none, creates one, passes it to `save` (which
   * must persist it, e.g. to a 0600 file) before committing, and returns it; otherwise returns
   * undefined. Serialised across instances.
   */
  async ensureApiToken(save: (token: string) => Promise<void>): Promise<string | undefined> {
    return this.#transaction((client) => ensureApiToken(client, save));
  }

  /** Creates an additional API token and returns it (only its SHA-256 is stored). */
  async createApiToken(): Promise<string> {
    return this.#run((client) => insertApiToken(client));
  }

  /** True when `token` is a valid API token. Compares SHA-256 hashes in constant time. */
  async verifyApiToken(token: string): Promise<boolean> {
    return this.#run((client) => verifyApiToken(client, token));
  }

  /** The probe's warnings; a probe that throws (a custom one) gives none rather than failing the change. */
  #tryOrigin(origin: OriginSettings): Promise<Warning[]> {
    const probe = this.#probe;
    if (!probe) return Promise.resolve([]);
    return Promise.resolve()
      .then(() => probe(origin))
      .catch(() => []);
  }

  #openPassword(row: { id: string; origin_password: Buffer }): string {
    return this.#box.open(row.origin_password, row.id, `the origin password of config ${row.id}`);
  }

  async #run<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw fromStoreError(error, this.#store);
    }
    let broken: Error | undefined;
    try {
      return await work(client);
    } catch (error) {
      // A connection that failed mid-way is discarded rather than returned to the pool.
      if (isStoreUnavailable(error) && error instanceof Error) broken = error;
      throw fromStoreError(error, this.#store);
    } finally {
      client.release(broken);
    }
  }

  async #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.#run(async (client) => {
      await client.query("BEGIN");
      try {
        const result = await work(client);
        await client.query("COMMIT");
        return result;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      }
    });
  }

  /** A transaction that announces a change of `configId` to gateways when it commits. */
  #change<T>(configId: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.#transaction(async (client) => {
      const result = await work(client);
      await client.query("SELECT pg_notify($1, $2)", [REGISTRY_CHANNEL, configId]);
      return result;
    });
  }
}

async function lockConfig(client: pg.PoolClient, configId: string): Promise<void> {
  const { rowCount } = await client.query("SELECT 1 FROM pgbind.configs WHERE id = $1 FOR UPDATE", [
    configId,
  ]);
  if (!rowCount) throw configNotFound(configId);
}

async function insertCredential(client: pg.PoolClient, configId: string): Promise<MintedCredential> {
  const password = newCredentialPassword();
  const { rows } = await client.query<CredentialRow>(
    `INSERT INTO pgbind.credentials (id, config_id, user_name, scram_verifier, created_at)
     VALUES ($1, $2, $3, $4, clock_timestamp()) RETURNING ${CREDENTIAL_COLUMNS}`,
    [newCredentialId(), configId, newCredentialUser(), createScramVerifier(password)],
  );
  return { credential: toCredential(rows[0] as CredentialRow), password };
}
