import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import pg from "pg";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { ControlError, MIGRATIONS, Registry } from "../src/index.ts";
import { createStore, openRegistry, originOf, testKey } from "./support.ts";

let server: TestPostgres;

/**
 * A pool that ignores errors of idle clients, as openRegistry's: a client pool.end() has not closed
 * yet would otherwise turn the server's shutdown at the end of the file (57P01) into an uncaught
 * exception charged to whichever test created it.
 */
function quietPool(connectionString: string, max?: number): pg.Pool {
  const pool = new pg.Pool({ connectionString, ...(max ? { max } : {}) });
  pool.on("error", () => {});
  return pool;
}

before(async () => {
  server = await startTestPostgres();
});
after(async () => {
  await server?.stop();
});

test("migrations are idempotent, and safe when several instances start at once", async () => {
  const url = await createStore(server);
  const pools = Array.from({ length: 4 }, () => quietPool(url, 2));
  try {
    const key = testKey();
    const registries = pools.map((pool) => new Registry({ pool, masterKey: key, probe: false }));
    const applied = await Promise.all(registries.map((r) => r.migrate()));
    // Exactly one instance applied each migration; the others waited on the lock and found nothing to do.
    assert.deepEqual(applied.flat().sort(), MIGRATIONS.map((m) => m.version).sort());
    assert.deepEqual(await registries[0]?.migrate(), []);
    const { rows } = await (pools[0] as pg.Pool).query<{ version: number; name: string }>(
      "SELECT version, name FROM pgbind.schema_migrations ORDER BY version",
    );
    assert.deepEqual(
      rows,
      MIGRATIONS.map((m) => ({ version: m.version, name: m.name })),
    );
    // Concurrent first starts agree on one key check value too.
    await Promise.all(registries.map((r) => r.verifyMasterKey({ record: true })));
  } finally {
    await Promise.all(pools.map((p) => p.end()));
  }
});

test("a store migrated by a newer pgbind is refused", async () => {
  const url = await createStore(server);
  const { registry, pool, close } = await openRegistry(url, testKey());
  try {
    await pool.query("INSERT INTO pgbind.schema_migrations (version, name) VALUES (999, 'future')");
    await assert.rejects(registry.migrate(), { code: "STORE_SCHEMA_TOO_NEW" });
  } finally {
    await close();
  }
});

test("origin passwords are encrypted at rest and bound to their row", async () => {
  const url = await createStore(server);
  const key = testKey();
  const { registry, pool, close } = await openRegistry(url, key);
  try {
    const { config } = await registry.createConfig({ name: "a", origin: originOf(server) });
    const { config: other } = await registry.createConfig({
      name: "b",
      origin: { ...originOf(server), password: "another-secret" },
    });
    await registry.mintCredential(config.id);
    await registry.mintCredential(other.id);
    const { rows } = await pool.query<{ row: string }>("SELECT t::text AS row FROM pgbind.configs t");
    assert.equal(rows.length, 2);
    for (const { row } of rows) {
      assert.ok(!row.includes(server.password), "the origin password must not be stored in plaintext");
      assert.ok(!row.includes(Buffer.from(server.password).toString("hex")));
    }
    const dump = (
      await pool.query<{ d: string }>("SELECT string_agg(t::text, '') AS d FROM pgbind.credentials t")
    ).rows[0]?.d;
    assert.ok(dump?.includes("SCRAM-SHA-256$4096:"));

    // Gateways get the password decrypted.
    const loaded = await registry.loadGatewayConfig();
    assert.equal(loaded.bindings.find((b) => b.id === config.id)?.origin.password, server.password);

    // A ciphertext moved to another row does not open (the config id is authenticated data).
    await pool.query(
      "UPDATE pgbind.configs SET origin_password = (SELECT origin_password FROM pgbind.configs WHERE id = $1) WHERE id = $2",
      [config.id, other.id],
    );
    await assert.rejects(registry.loadGatewayConfig(), (error: unknown) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, "MASTER_KEY_MISMATCH");
      assert.match(error.message, new RegExp(other.id));
      assert.ok(!error.message.includes(server.password));
      return true;
    });
  } finally {
    await close();
  }
});

test("a wrong master key is a coded error, at start and at decrypt time", async () => {
  const url = await createStore(server);
  const { registry, close } = await openRegistry(url, testKey());
  await registry
    .createConfig({ name: "a", origin: originOf(server) })
    .then((r) => registry.mintCredential(r.config.id));
  await close();

  const wrongKey = testKey();
  const pool = quietPool(url);
  try {
    const wrong = new Registry({ pool, masterKey: wrongKey, probe: false });
    for (const attempt of [() => wrong.verifyMasterKey({ record: true }), () => wrong.loadGatewayConfig()]) {
      await assert.rejects(attempt(), (error: unknown) => {
        assert.ok(error instanceof ControlError);
        assert.equal(error.code, "MASTER_KEY_MISMATCH");
        assert.equal(error.status, 500);
        assert.ok(!error.message.includes(server.password));
        assert.ok(!error.message.includes(wrongKey.toString("base64")));
        return true;
      });
    }
    // Listing never decrypts, so it still works.
    assert.equal((await wrong.listConfigs()).length, 1);
  } finally {
    await pool.end();
  }
});

test("an unreachable store is STORE_UNAVAILABLE (retryable), and the message holds no password", async () => {
  const pool = new pg.Pool({
    connectionString: "postgres://u:hunter2-secret@127.0.0.1:1/x",
    connectionTimeoutMillis: 2000,
  });
  try {
    const registry = new Registry({ pool, masterKey: testKey(), probe: false, storeName: "127.0.0.1:1/x" });
    await assert.rejects(registry.listConfigs(), (error: unknown) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, "STORE_UNAVAILABLE");
      assert.equal(error.retryable, true);
      assert.equal(error.status, 503);
      assert.ok(!error.message.includes("hunter2"));
      return true;
    });
  } finally {
    await pool.end();
  }
});
