import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type BindingConfig, Gateway, type GatewayConfig, parseGatewayConfig } from "@pgbind/gateway";
import pg from "pg";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { ControlError, RegistryConfigSource } from "../src/index.ts";
import { adminConfig, createStore, eventually, openRegistry, originOf, testKey } from "./support.ts";

let server: TestPostgres;

before(async () => {
  server = await startTestPostgres();
});
after(async () => {
  await server?.stop();
});

/** A watched source remembering the latest config and every error. */
function follow(source: RegistryConfigSource) {
  const state: { config: GatewayConfig | undefined; errors: Error[]; changes: number } = {
    config: undefined,
    errors: [],
    changes: 0,
  };
  const stop = source.watch((result) => {
    state.changes++;
    if ("config" in result) state.config = result.config;
    else state.errors.push(result.error);
  });
  const binding = (id: string): BindingConfig | undefined => state.config?.bindings.find((b) => b.id === id);
  return { state, stop, binding };
}

async function setup() {
  const store = await createStore(server);
  const masterKey = testKey();
  const opened = await openRegistry(store, masterKey);
  return { store, masterKey, registry: opened.registry, close: opened.close };
}

test("two sources on one store both see a create, an update and a revoke within a second", async () => {
  const { store, masterKey, registry, close } = await setup();
  const sources = [0, 1].map(() => new RegistryConfigSource({ store, masterKey }));
  const followers = sources.map(follow);
  try {
    assert.equal((await sources[0]?.load())?.bindings.length, 0);
    const { config } = await registry.createConfig({ name: "feed", origin: originOf(server) });
    const first = await registry.mintCredential(config.id);
    await registry.mintCredential(config.id);
    for (const f of followers) {
      assert.ok(await eventually(() => f.binding(config.id)?.credentials.length === 2), "create seen");
    }
    await registry.updateConfig(config.id, { poolSize: 7 });
    for (const f of followers)
      assert.ok(await eventually(() => f.binding(config.id)?.poolSize === 7), "update seen");
    await registry.revokeCredential(config.id, first.credential.id);
    for (const f of followers) {
      assert.ok(
        await eventually(() => {
          const users = f.binding(config.id)?.credentials.map((c) => c.user);
          return users?.length === 1 && !users.includes(first.credential.user);
        }),
        "revoke seen",
      );
    }
    await registry.deleteConfig(config.id);
    for (const f of followers)
      assert.ok(await eventually(() => f.binding(config.id) === undefined), "delete seen");
    for (const f of followers) assert.deepEqual(f.state.errors, []);
  } finally {
    for (const f of followers) f.stop();
    await close();
  }
});

test("the gateway config validates, and a real gateway lets minted credentials in until revoked or expired", async () => {
  const { store, masterKey, registry, close } = await setup();
  const source = new RegistryConfigSource({ store, masterKey });
  const follower = follow(source);
  const gateway = new Gateway({ source, port: 0 });
  let port = 0;
  try {
    const { config } = await registry.createConfig({ name: "gw", origin: originOf(server) });
    const minted = await registry.mintCredential(config.id);

    const loaded = await source.load();
    // What the registry produces is a valid gateway config file (secrets included, as gateways need them).
    const reparsed = parseGatewayConfig(JSON.parse(JSON.stringify(loaded)), "registry");
    assert.deepEqual(reparsed.bindings[0]?.origin, loaded.bindings[0]?.origin);
    assert.equal(loaded.bindings[0]?.database, config.id);
    assert.equal(loaded.bindings[0]?.origin.password, server.password);

    ({ port } = await gateway.start());
    const connect = async (user: string, password: string) => {
      const client = new pg.Client({ host: "127.0.0.1", port, user, password, database: config.id });
      client.on("error", () => {});
      try {
        await client.connect();
        return (await client.query<{ one: number }>("SELECT 1 AS one")).rows[0]?.one;
      } catch (error) {
        return (error as { code?: string }).code;
      } finally {
        await client.end().catch(() => {});
      }
    };
    assert.equal(await connect(minted.credential.user, minted.password), 1);
    assert.equal(await connect(minted.credential.user, "wrong"), "28P01");

    // Rotation: the old credential works through its grace period, then is dropped on time.
    const rotated = await registry.rotateCredentials(config.id, 1);
    assert.ok(await eventually(() => follower.binding(config.id)?.credentials.length === 2));
    assert.ok(await eventually(() => gateway.bindings.get(config.id)?.config.credentials.length === 2));
    assert.equal(await connect(rotated.credential.user, rotated.password), 1);
    assert.equal(await connect(minted.credential.user, minted.password), 1);
    assert.ok(
      await eventually(() => follower.binding(config.id)?.credentials.length === 1, 2_500),
      "the expired credential is dropped by a reload at its expiry",
    );
    assert.equal(await connect(minted.credential.user, minted.password), "28P01");

    await registry.revokeCredential(config.id, rotated.credential.id);
    assert.ok(
      await eventually(() => follower.binding(config.id) === undefined),
      "no usable credential: no binding",
    );
    assert.ok(
      await eventually(async () => (await connect(rotated.credential.user, rotated.password)) === "28P01"),
      "refused once revoked",
    );
  } finally {
    follower.stop();
    await gateway.close(0);
    await source.close();
    await close();
  }
});

test("after losing the change feed the source reports it without secrets, reconnects and catches up", async () => {
  const { store, masterKey, registry, close } = await setup();
  const source = new RegistryConfigSource({ store, masterKey });
  const follower = follow(source);
  const admin = new pg.Client(adminConfig(server));
  await admin.connect();
  try {
    const database = new URL(store).pathname.slice(1);
    const listening = async () =>
      (
        await admin.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pgbind-registry-listen' AND datname = $1",
          [database],
        )
      ).rowCount === 1;
    assert.ok(await eventually(listening, 2_000));
    await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgbind-registry-listen' AND datname = $1",
      [database],
    );
    // A change while the feed is down is picked up by the reload after reconnecting.
    const { config } = await registry.createConfig({ name: "missed", origin: originOf(server) });
    await registry.mintCredential(config.id);
    assert.ok(await eventually(() => follower.state.errors.length > 0, 2_000), "the loss is reported");
    const error = follower.state.errors[0];
    assert.ok(error instanceof ControlError);
    assert.ok(!error.message.includes(server.password));
    assert.ok(await eventually(() => follower.binding(config.id) !== undefined, 3_000), "caught up");
    assert.ok(await eventually(listening, 2_000), "listening again");
  } finally {
    follower.stop();
    await admin.end();
    await source.close();
    await close();
  }
});

test("stop ends everything: no further reports, no timers keeping the process alive", async () => {
  const { store, masterKey, registry, close } = await setup();
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
  const baseline = timers();
  const source = new RegistryConfigSource({ store, masterKey, pollIntervalMs: 50 });
  const follower = follow(source);
  try {
    const { config } = await registry.createConfig({ name: "quiet", origin: originOf(server) });
    await registry.mintCredential(config.id);
    await registry.rotateCredentials(config.id, 1);
    assert.ok(await eventually(() => follower.binding(config.id) !== undefined));
    follower.stop();
    const seen = follower.state.changes;
    await registry.mintCredential(config.id);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(follower.state.changes, seen);
    assert.deepEqual(follower.state.errors, []);
    assert.ok(timers() <= baseline, "no timer left behind");
  } finally {
    await close();
  }
});

test("a source with the wrong master key reports MASTER_KEY_MISMATCH, never the key or a password", async () => {
  const { store, registry, close } = await setup();
  try {
    const { config } = await registry.createConfig({ name: "k", origin: originOf(server) });
    await registry.mintCredential(config.id);
    const wrongKey = testKey();
    const source = new RegistryConfigSource({ store, masterKey: wrongKey });
    await assert.rejects(source.load(), (error: unknown) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, "MASTER_KEY_MISMATCH");
      assert.ok(!error.message.includes(server.password));
      assert.ok(!error.message.includes(wrongKey.toString("base64")));
      return true;
    });
    await source.close();
    assert.throws(() => new RegistryConfigSource({ store, masterKey: Buffer.alloc(16) }), {
      code: "MASTER_KEY_INVALID",
    });
  } finally {
    await close();
  }
});
