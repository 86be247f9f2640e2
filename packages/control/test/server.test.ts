import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { startTestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { ControlError, type ControlPlane, startControlPlane } from "../src/index.ts";
import { createStore, testKey } from "./support.ts";

async function api(plane: ControlPlane, token: string, method: string, route: string, body?: unknown) {
  const response = await fetch(`${plane.url}${route}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected freely
  return { status: response.status, json: (text ? JSON.parse(text) : undefined) as any };
}

async function mode(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

test("embedded store: first start creates the token and files; a restart loses nothing", async () => {
  const dir = await makeTempDir("control-server");
  const dataDir = path.join(dir.path, "control");
  const events: string[] = [];
  const log = (event: string, fields: Record<string, unknown>) =>
    events.push(JSON.stringify({ event, ...fields }));
  let plane: ControlPlane | undefined;
  try {
    plane = await startControlPlane({
      dataDir,
      listen: { host: "127.0.0.1", port: 0 },
      gatewayUrl: "postgres://127.0.0.1:6432",
      probe: false,
      log,
    });
    const token = plane.token;
    assert.ok(token, "a token is created on first start");
    assert.equal(plane.tokenFile, path.join(dataDir, "token"));
    assert.equal((await readFile(plane.tokenFile, "utf8")).trim(), token);
    for (const file of ["token", "control.json", "master.key", "postgres.json"]) {
      assert.equal(await mode(path.join(dataDir, file)), 0o600, file);
    }
    const discovery = JSON.parse(await readFile(path.join(dataDir, "control.json"), "utf8"));
    assert.deepEqual(discovery, { url: plane.url, pid: process.pid, tokenFile: plane.tokenFile });
    assert.match(plane.url, /^http:\/\/127\.0\.0\.1:\d+$/);

    assert.deepEqual((await (await fetch(`${plane.url}/healthz`)).json()) as unknown, { ok: true });
    assert.equal((await api(plane, "nope", "GET", "/v1/configs")).status, 401);
    const created = await api(plane, token, "POST", "/v1/configs", {
      name: "kept",
      connectionString: `${plane.storeUrl}?sslmode=disable`,
    });
    assert.equal(created.status, 201);
    const minted = await api(plane, token, "POST", `/v1/configs/${created.json.config.id}/credentials`);
    assert.match(minted.json.connectionString, /^postgres:\/\/pgb_u_[a-z0-9]+:[^@]+@127\.0\.0\.1:6432\/pgb_/);
    const storeUrl = plane.storeUrl;
    // A taken port fails at once, before the database starts.
    const port = Number(new URL(plane.url).port);
    await assert.rejects(
      startControlPlane({ dataDir: path.join(dir.path, "other"), listen: { host: "127.0.0.1", port } }),
      { code: "EADDRINUSE" },
    );
    await assert.rejects(stat(path.join(dir.path, "other", "postgres")), { code: "ENOENT" });
    await plane.close();
    await plane.close();
    await assert.rejects(stat(path.join(dataDir, "control.json")), { code: "ENOENT" });

    plane = await startControlPlane({ dataDir, listen: "127.0.0.1:0", probe: false, log });
    assert.equal(plane.token, undefined, "no new token on restart");
    assert.equal(plane.storeUrl, storeUrl, "the store keeps its port and password");
    const list = await api(plane, token, "GET", "/v1/configs");
    assert.equal(list.status, 200, "the old token is still valid");
    assert.deepEqual(
      list.json.configs.map((c: { name: string }) => c.name),
      ["kept"],
    );
    const creds = await api(plane, token, "GET", `/v1/configs/${created.json.config.id}/credentials`);
    assert.equal(creds.json.credentials.length, 1);

    const logged = events.join("\n");
    assert.match(logged, /control_started/);
    assert.match(logged, /http_request/);
    for (const secret of [token, minted.json.password, new URL(storeUrl).password]) {
      assert.ok(!logged.includes(secret), "logs hold no secret");
    }
  } finally {
    await plane?.close();
    await dir.remove();
  }
});

test("external store: the key must be given, one token for concurrent first starts, a wrong key is refused", async () => {
  const server = await startTestPostgres();
  const dir = await makeTempDir("control-external");
  const planes: ControlPlane[] = [];
  try {
    const store = await createStore(server);
    const dataDir = (name: string) => path.join(dir.path, name);
    await assert.rejects(
      startControlPlane({ store, dataDir: dataDir("none"), listen: "127.0.0.1:0" }),
      (error: unknown) => {
        assert.ok(error instanceof ControlError);
        assert.equal(error.code, "MASTER_KEY_MISSING");
        assert.match(error.message, /PGBIND_MASTER_KEY/);
        return true;
      },
    );

    const masterKey = testKey();
    const lines: object[] = [];
    const pino = {
      info: (o: object) => lines.push(o),
      warn: (o: object) => lines.push(o),
      error: (o: object) => lines.push(o),
    };
    planes.push(
      ...(await Promise.all(
        ["a", "b"].map((name) =>
          startControlPlane({
            store,
            masterKey,
            dataDir: dataDir(name),
            listen: "127.0.0.1:0",
            log: pino,
            probe: false,
          }),
        ),
      )),
    );
    const tokens = planes.map((p) => p.token).filter((t) => t !== undefined);
    assert.equal(tokens.length, 1, "exactly one instance created the token");
    const token = tokens[0] as string;
    for (const plane of planes) {
      assert.equal(plane.storeUrl, store);
      assert.equal((await api(plane, token, "GET", "/v1/configs")).status, 200);
    }
    assert.ok(lines.some((l) => (l as { event?: string }).event === "control_started"));
    assert.ok(!JSON.stringify(lines).includes(server.password));

    await assert.rejects(
      startControlPlane({ store, masterKey: testKey(), dataDir: dataDir("c"), listen: "127.0.0.1:0" }),
      { code: "MASTER_KEY_MISMATCH" },
    );
    await assert.rejects(startControlPlane({ store, masterKey, dataDir: dataDir("d"), listen: "nope" }), {
      code: "INVALID_OPTIONS",
    });
    await assert.rejects(
      startControlPlane({
        store,
        masterKey,
        dataDir: dataDir("e"),
        listen: "127.0.0.1:0",
        gatewayUrl: "http://x",
      }),
      { code: "INVALID_OPTIONS" },
    );
  } finally {
    for (const plane of planes) await plane.close();
    await server.stop();
    await dir.remove();
  }
});
