import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type ControlPlane, startControlPlane } from "@pgbind/control";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { canLogIn, type RunningGateway, startGateway } from "./gateway-support.ts";
import { eventually } from "./pgbind-process.ts";

// Two gateway processes on one registry, fed live by the control plane's change feed.
let pg: TestPostgres;
let dir: Awaited<ReturnType<typeof makeTempDir>>;
let control: ControlPlane;
let storeUrl: string;
const masterKey = randomBytes(32);
const gateways: RunningGateway[] = [];

function originBody(name: string) {
  return {
    name,
    origin: {
      host: pg.host,
      port: pg.port,
      database: "postgres",
      user: pg.user,
      password: pg.password,
      sslmode: "disable" as const,
    },
    poolSize: 2,
  };
}

before(async () => {
  pg = await startTestPostgres();
  dir = await makeTempDir("gw-registry");
  storeUrl = `postgres://${pg.user}:${encodeURIComponent(pg.password)}@${pg.host}:${pg.port}/postgres`;
  control = await startControlPlane({
    store: storeUrl,
    dataDir: dir.path,
    masterKey,
    listen: { host: "127.0.0.1", port: 0 },
    probe: false,
  });
});

after(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  await control?.close();
  await pg?.stop();
  await dir?.remove();
});

describe("pgbind gateway --store (the control plane's registry)", () => {
  it("two gateways serve registry configs and follow creates, rotations and revocations live", async () => {
    const { config: first } = await control.registry.createConfig(originBody("first"));
    const minted = await control.registry.mintCredential(first.id);
    const env = { PGBIND_MASTER_KEY: masterKey.toString("base64") };
    for (let i = 0; i < 2; i++) {
      gateways.push(startGateway(["--store", storeUrl, "--listen", "127.0.0.1:0"], { cwd: dir.path, env }));
    }
    const ports = await Promise.all(gateways.map((g) => g.listening));
    const login = (port: number, user: string, password: string, database: string) =>
      canLogIn(port, { user, password, database }, "select current_database() as db");
    for (const port of ports) await login(port, minted.credential.user, minted.password, first.id);

    // A config created after the gateways started is served by both.
    const { config: second } = await control.registry.createConfig(originBody("second"));
    const secondCredential = await control.registry.mintCredential(second.id);
    for (const port of ports) {
      await eventually("the gateway to follow the registry", () =>
        login(port, secondCredential.credential.user, secondCredential.password, second.id),
      );
    }

    // Rotation: the new credential works at once, the old one until its grace period ends.
    const rotated = await control.registry.rotateCredentials(first.id, 2);
    for (const port of ports) {
      await eventually("the gateway to follow the registry", () =>
        login(port, rotated.credential.user, rotated.password, first.id),
      );
      await login(port, minted.credential.user, minted.password, first.id);
    }
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    for (const port of ports) {
      await eventually("the gateway to follow the registry", () =>
        assert.rejects(
          login(port, minted.credential.user, minted.password, first.id),
          /password authentication failed/,
        ),
      );
    }

    // Revocation is refused within seconds on both.
    await control.registry.revokeCredential(second.id, secondCredential.credential.id);
    for (const port of ports) {
      await eventually("the gateway to follow the registry", () =>
        assert.rejects(
          login(port, secondCredential.credential.user, secondCredential.password, second.id),
          /password authentication failed/,
        ),
      );
    }
    // Nothing secret reached the logs.
    for (const g of gateways) {
      const { stdout, stderr } = g.output();
      for (const secret of [pg.password, minted.password, rotated.password, masterKey.toString("base64")]) {
        assert.ok(
          !stdout.includes(secret) && !stderr.includes(secret),
          "a secret appeared in the gateway output",
        );
      }
      assert.ok(g.logs().some((l) => l.event === "config_reloaded" && l.reason === "registry change"));
    }
  });

  it("refuses a bad --store value, a missing master key, and --control-dir without --store", async () => {
    const bad = startGateway(["--store", "mysql://x", "--listen", "127.0.0.1:0"], {
      cwd: dir.path,
      env: { PGBIND_MASTER_KEY: masterKey.toString("base64") },
    });
    assert.equal(await bad.exited, 2);
    assert.match(bad.output().stderr, /--store: expected a postgres:\/\/ URL or "local"/);

    const keyless = startGateway(
      ["--store", storeUrl, "--control-dir", "nowhere", "--listen", "127.0.0.1:0"],
      {
        cwd: dir.path,
      },
    );
    assert.equal(await keyless.exited, 2);
    assert.match(keyless.output().stderr, /PGBIND_MASTER_KEY/);
    assert.ok(!keyless.output().stderr.includes(pg.password));

    const local = startGateway(["--store", "local", "--control-dir", "nowhere", "--listen", "127.0.0.1:0"], {
      cwd: dir.path,
    });
    assert.equal(await local.exited, 2);
    assert.match(local.output().stderr, /start the control plane first/);

    const stray = startGateway(["--config", "x.json", "--control-dir", "d"], { cwd: dir.path });
    assert.equal(await stray.exited, 2);
    assert.match(stray.output().stderr, /--control-dir goes with --store/);
  });
});
