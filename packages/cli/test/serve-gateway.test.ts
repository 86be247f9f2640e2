import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type ControlPlane, startControlPlane } from "@pgbind/control";
import { freePort } from "@pgbind/local-postgres";
import pg from "pg";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { runCli } from "../src/index.ts";
import { eventually, spawnPgbind } from "./pgbind-process.ts";

// The whole path: a manifest id → the control plane → a gateway binding → `pgbind gateway --store`
// (reading the same registry) → the origin.
const BACKEND = path.join(import.meta.dirname, "fixtures/serve-postgres.js");
const ROTATING_BACKEND = path.join(import.meta.dirname, "fixtures/serve-rotating.js");
const masterKey = randomBytes(32);

describe("pgbind serve through the gateway, the binding resolved by config id", () => {
  let origin: TestPostgres;
  let project: Awaited<ReturnType<typeof makeTempDir>>;
  let plane: ControlPlane;
  let gatewayPort: number;
  let storeUrl: string;

  before(async () => {
    [origin, project, gatewayPort] = await Promise.all([
      startTestPostgres(),
      makeTempDir("serve-gateway"),
      freePort(),
    ]);
    storeUrl = `postgres://${origin.user}:${encodeURIComponent(origin.password)}@127.0.0.1:${origin.port}/postgres`;
    plane = await startControlPlane({
      store: storeUrl,
      dataDir: path.join(project.path, ".pgbind/control"),
      listen: "127.0.0.1:0",
      masterKey,
      gatewayUrl: `postgres://127.0.0.1:${gatewayPort}?sslmode=disable`,
      log: () => {},
    });
  });
  after(async () => {
    await plane?.close();
    await origin?.stop();
    await project?.remove();
  });

  it("a postgres.js backend declared with only the config id reads and writes through the gateway", async () => {
    const gateway = spawnPgbind(
      ["gateway", "--store", storeUrl, "--listen", `127.0.0.1:${gatewayPort}`],
      project.path,
      { PGBIND_MASTER_KEY: masterKey.toString("base64") },
    );
    await gateway.waitFor(/listening on /);

    let stdout = "";
    let stderr = "";
    const created = await runCli(
      [
        "configs",
        "create",
        "notes-db",
        "--origin-host",
        "127.0.0.1",
        "--origin-port",
        String(origin.port),
        "--database",
        "postgres",
        "--origin-user",
        origin.user,
        "--origin-password",
        origin.password,
        "--sslmode",
        "disable",
        "--pool-size",
        "2",
        "--json",
      ],
      {
        stdout: (t) => {
          stdout += t;
        },
        stderr: (t) => {
          stderr += t;
        },
        env: {},
        cwd: project.path,
      },
    );
    assert.equal(created, 0, stderr);
    const configId = (JSON.parse(stdout) as { config: { id: string } }).config.id;
    const manifest = path.join(project.path, "w7s.json");
    await writeFile(
      manifest,
      JSON.stringify({ bindings: { hyperdrive: [{ binding: "DB", id: configId }] } }),
    );

    const serve = spawnPgbind(["serve", BACKEND, "--manifest", manifest, "--port", "0"], project.path);
    const url = (await serve.waitFor(/Serving \S+ on (http:\/\/\S+)\n/))[1] as string;
    assert.match(
      serve.stdout(),
      new RegExp(
        `env\\.DB → postgres://pgb_u_\\w+:\\*{8}@127\\.0\\.0\\.1:${gatewayPort}/${configId}\\?sslmode=disable`,
      ),
    );

    // The gateway hears of the freshly minted credential through the registry's change feed.
    const cached = JSON.parse(
      await readFile(path.join(project.path, ".pgbind/control/credentials", `${configId}.json`), "utf8"),
    ) as { user: string; password: string };
    await eventually("the gateway to accept the new credential", async () => {
      const client = new pg.Client({
        host: "127.0.0.1",
        port: gatewayPort,
        user: cached.user,
        password: cached.password,
        database: configId,
      });
      await client.connect();
      await client.end();
    });

    for (const body of ["first note", "second note"]) {
      const res = await fetch(`${url}/notes`, { method: "POST", body });
      assert.equal(res.status, 201, await res.clone().text());
    }
    assert.deepEqual(await (await fetch(`${url}/notes`)).json(), [
      { id: 1, body: "first note" },
      { id: 2, body: "second note" },
    ]);
    // The rows are in the origin, written by the origin user the workload never saw.
    const direct = new pg.Client({
      host: "127.0.0.1",
      port: origin.port,
      user: origin.user,
      password: origin.password,
      database: "postgres",
    });
    await direct.connect();
    try {
      assert.deepEqual((await direct.query("select body from notes order by id")).rows, [
        { body: "first note" },
        { body: "second note" },
      ]);
    } finally {
      await direct.end();
    }

    assert.equal(await serve.stop(), 0);
    assert.equal(await gateway.stop(), 0);
    for (const out of [serve.stdout(), serve.stderr(), gateway.stdout(), gateway.stderr()]) {
      assert.ok(!out.includes(cached.password), "the credential password appeared in an output");
      assert.ok(!out.includes(origin.password), "the origin password appeared in an output");
    }
  });
  it("rotating the credential while requests run: none fails, serve moves over, the old one is refused once revoked", async () => {
    const gateway = spawnPgbind(
      ["gateway", "--store", storeUrl, "--listen", `127.0.0.1:${gatewayPort}`],
      project.path,
      { PGBIND_MASTER_KEY: masterKey.toString("base64") },
    );
    await gateway.waitFor(/listening on /);
    const { config } = await plane.registry.createConfig({
      name: "rotation-db",
      origin: {
        host: "127.0.0.1",
        port: origin.port,
        database: "postgres",
        user: origin.user,
        password: origin.password,
        sslmode: "disable",
      },
      poolSize: 4,
    });
    const manifest = path.join(project.path, "rotation.w7s.json");
    await writeFile(
      manifest,
      JSON.stringify({ bindings: { hyperdrive: [{ binding: "DB", id: config.id }] } }),
    );
    const serve = spawnPgbind(
      ["serve", ROTATING_BACKEND, "--manifest", manifest, "--port", "0"],
      project.path,
      {
        PGBIND_CREDENTIAL_CHECK_MS: "200",
      },
    );
    const url = (await serve.waitFor(/Serving \S+ on (http:\/\/\S+)\n/))[1] as string;
    const first = await eventually("a first request through the gateway", async () => {
      const res = await fetch(url);
      assert.equal(res.status, 200, `${await res.clone().text()}\n${gateway.stderr().slice(-3000)}`);
      return (await res.json()) as { user: string };
    });
    const old = JSON.parse(
      await readFile(path.join(project.path, ".pgbind/control/credentials", `${config.id}.json`), "utf8"),
    ) as { credentialId: string; user: string; password: string };
    assert.equal(first.user, old.user);

    // Requests run the whole time; every one must succeed.
    let running = true;
    const failures: string[] = [];
    const users = new Set<string>();
    let done = 0;
    const load = (async () => {
      while (running) {
        const res = await fetch(`${url}/`, { method: "POST", body: `n${done}` }).catch((e: Error) => e);
        if (res instanceof Error) failures.push(res.message);
        else if (res.status !== 201) failures.push(`${res.status} ${await res.text()}`);
        else users.add(((await res.json()) as { user: string }).user);
        done++;
      }
    })();
    const cli = async (args: string[]) => {
      let out = "";
      let err = "";
      const code = await runCli(args, {
        stdout: (t) => {
          out += t;
        },
        stderr: (t) => {
          err += t;
        },
        env: {},
        cwd: project.path,
      });
      assert.equal(code, 0, err);
      return out;
    };
    await sleep(300);
    await cli(["credentials", "rotate", config.id, "--grace-seconds", "600"]);
    await eventually("serve to move to the new credential", async () => {
      assert.match(
        serve.stderr(),
        /DB: credential pgc_[\w-]+ is no longer active; now using pgc_[\w-]+/,
        gateway.stderr().slice(-3000),
      );
    });
    await sleep(500);
    // The old credential still works during its grace period (for anything not yet moved over)…
    const login = (user: string, password: string) => {
      const c = new pg.Client({ host: "127.0.0.1", port: gatewayPort, user, password, database: config.id });
      return c.connect().then(() => c.end());
    };
    await login(old.user, old.password);
    // …and is refused within seconds once revoked, while requests go on.
    await cli(["credentials", "revoke", config.id, old.credentialId]);
    await eventually("the gateway to refuse the revoked credential", () =>
      assert.rejects(login(old.user, old.password), /password authentication failed/),
    );
    await sleep(500);
    running = false;
    await load;
    assert.equal(
      failures.length,
      0,
      `${failures.length} of ${done} requests failed:\n${serve.stderr().slice(-2500)}`,
    );
    assert.ok(done > 20, `only ${done} requests ran`);
    assert.equal(users.size, 2, "requests ran with the old credential, then the new one");
    assert.equal(await serve.stop(), 0);
    assert.equal(await gateway.stop(), 0);
    for (const out of [serve.stdout(), serve.stderr(), gateway.stdout(), gateway.stderr()]) {
      assert.ok(!out.includes(old.password), "a credential password appeared in an output");
    }
  });
});
