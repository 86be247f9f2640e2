import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Hono } from "hono";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { type Config, type Credential, createApi, type Registry } from "../src/index.ts";
import { createStore, openRegistry, originOf, testKey } from "./support.ts";

let server: TestPostgres;
let registry: Registry;
let closeRegistry: () => Promise<void>;
let app: Hono;
let token: string;
const logged: Record<string, unknown>[] = [];

before(async () => {
  server = await startTestPostgres();
  const opened = await openRegistry(await createStore(server), testKey(), async (origin) =>
    origin.host === "db.unreachable.test" ? [{ code: "ORIGIN_UNREACHABLE", message: "stub" }] : [],
  );
  registry = opened.registry;
  closeRegistry = opened.close;
  token = (await registry.ensureApiToken(async () => {})) as string;
  app = createApi(registry, {
    gatewayUrl: "postgres://gw.example:6432?sslmode=require",
    log: (event, fields) => logged.push({ event, ...fields }),
  });
});
after(async () => {
  await closeRegistry?.();
  await server?.stop();
});

async function call(method: string, path: string, body?: unknown, auth: string | null = token) {
  const headers: Record<string, string> = {};
  if (auth !== null) headers.Authorization = `Bearer ${auth}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await app.request(path, {
    method,
    headers,
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  // biome-ignore lint/suspicious/noExplicitAny: test responses are inspected freely
  const json: any = text === "" ? undefined : JSON.parse(text);
  return { status: response.status, json, text, headers: response.headers };
}

function origin() {
  return originOf(server);
}

const FAKE_CONFIG = "pgb_AAAAAAAAAAAAAAAAAAAAAAAA";
const FAKE_CREDENTIAL = "pgc_AAAAAAAAAAAAAAAAAAAAAAAA";
const ROUTES: [string, string][] = [
  ["GET", "/v1/info"],
  ["GET", "/v1/openapi.json"],
  ["POST", "/v1/configs"],
  ["GET", "/v1/configs"],
  ["GET", `/v1/configs/${FAKE_CONFIG}`],
  ["PATCH", `/v1/configs/${FAKE_CONFIG}`],
  ["DELETE", `/v1/configs/${FAKE_CONFIG}`],
  ["POST", `/v1/configs/${FAKE_CONFIG}/credentials`],
  ["GET", `/v1/configs/${FAKE_CONFIG}/credentials`],
  ["POST", `/v1/configs/${FAKE_CONFIG}/credentials/rotate`],
  ["POST", `/v1/configs/${FAKE_CONFIG}/credentials/${FAKE_CREDENTIAL}/revoke`],
  ["GET", "/v1/nope"],
];

test("every route but /healthz needs the bearer token", async () => {
  assert.deepEqual((await call("GET", "/healthz", undefined, null)).json, { ok: true });
  for (const [method, path] of ROUTES) {
    for (const auth of [null, "wrong-token", `${token}x`, ""]) {
      const r = await call(method, path, method === "GET" || method === "DELETE" ? undefined : {}, auth);
      assert.equal(r.status, 401, `${method} ${path}`);
      assert.equal(r.json.error.code, "UNAUTHORIZED");
      assert.match(r.headers.get("WWW-Authenticate") ?? "", /^Bearer/);
    }
  }
  const basic = await app.request("/v1/configs", { headers: { Authorization: `Basic ${token}` } });
  assert.equal(basic.status, 401);
});

test("info and the OpenAPI document", async () => {
  const info = await call("GET", "/v1/info");
  assert.equal(info.status, 200);
  assert.deepEqual(info.json.gateway, { host: "gw.example", port: 6432, sslmode: "require" });
  assert.match(info.json.version, /^\d+\.\d+\.\d+/);

  const { json: doc } = await call("GET", "/v1/openapi.json");
  assert.equal(doc.openapi, "3.1.0");
  const operations = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
    ([path, item]) =>
      Object.keys(item)
        .filter((k) => k !== "parameters")
        .map((method) => `${method.toUpperCase()} ${path}`),
  );
  assert.deepEqual(operations.sort(), [
    "DELETE /v1/configs/{id}",
    "GET /healthz",
    "GET /v1/configs",
    "GET /v1/configs/{id}",
    "GET /v1/configs/{id}/credentials",
    "GET /v1/info",
    "GET /v1/openapi.json",
    "PATCH /v1/configs/{id}",
    "POST /v1/configs",
    "POST /v1/configs/{id}/credentials",
    "POST /v1/configs/{id}/credentials/rotate",
    "POST /v1/configs/{id}/credentials/{credentialId}/revoke",
  ]);
  // Every $ref resolves.
  const refs = [...JSON.stringify(doc).matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map(
    (m) => m[1] as string,
  );
  assert.ok(refs.length > 10);
  for (const ref of refs) assert.ok(doc.components.schemas[ref], ref);
});

test("create, list, get, update and delete a config", async () => {
  const created = await call("POST", "/v1/configs", { name: "orders-db", origin: origin(), poolSize: 5 });
  assert.equal(created.status, 201, created.text);
  const config: Config = created.json.config;
  assert.match(config.id, /^pgb_[A-Za-z0-9_-]{24}$/);
  assert.deepEqual(created.json.warnings, []);
  assert.equal(config.poolSize, 5);
  assert.equal(config.poolMode, "transaction");
  assert.equal(config.origin.sslmode, "disable");
  assert.equal(config.timeouts.queryWaitMs, 30_000);
  assert.ok(!created.text.includes(server.password), "no response contains the origin password");
  assert.ok(!("password" in config.origin));

  await call("POST", "/v1/configs", {
    name: "alpha",
    connectionString: `postgres://${server.user}:${encodeURIComponent(server.password)}@${server.host}:${server.port}/postgres?sslmode=disable`,
  });
  const list = await call("GET", "/v1/configs");
  assert.deepEqual(
    list.json.configs.map((c: Config) => c.name),
    ["alpha", "orders-db"],
  );
  assert.ok(!list.text.includes(server.password));

  const got = await call("GET", `/v1/configs/${config.id}`);
  assert.deepEqual(got.json.config, config);

  const patched = await call("PATCH", `/v1/configs/${config.id}`, {
    origin: { port: 6543 },
    timeouts: { queryWaitMs: 1000 },
    poolMode: "session",
  });
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.json.config.origin.port, 6543);
  assert.equal(patched.json.config.origin.host, server.host);
  assert.equal(patched.json.config.timeouts.queryWaitMs, 1000);
  assert.equal(patched.json.config.timeouts.connectMs, 30_000);
  assert.equal(patched.json.config.poolMode, "session");
  assert.ok(patched.json.config.updatedAt >= config.updatedAt);

  const warned = await call("PATCH", `/v1/configs/${config.id}`, { origin: { host: "db.unreachable.test" } });
  assert.deepEqual(
    warned.json.warnings.map((w: { code: string }) => w.code),
    ["ORIGIN_UNREACHABLE"],
  );

  const deleted = await call("DELETE", `/v1/configs/${config.id}`);
  assert.equal(deleted.status, 204);
  assert.equal(deleted.text, "");
  const gone = await call("GET", `/v1/configs/${config.id}`);
  assert.equal(gone.status, 404);
  assert.match(gone.json.error.message, new RegExp(config.id));
});

test("400 names each bad field; non-JSON and empty bodies; secrets never echoed", async () => {
  const bad = await call("POST", "/v1/configs", {
    name: "",
    origin: { host: "h", port: "x", database: "d", user: "u", password: "", colour: "red" },
    poolSize: -1,
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, "INVALID_REQUEST");
  assert.deepEqual(bad.json.error.problems.map((p: { field: string }) => p.field).sort(), [
    "name",
    "origin.colour",
    "origin.password",
    "origin.port",
    "poolSize",
  ]);
  const secret = "do-not-echo-me";
  const echoed = await call("POST", "/v1/configs", {
    name: "x",
    connectionString: `postgres://u:${secret}@h:0/d`,
  });
  assert.equal(echoed.status, 400);
  assert.ok(!echoed.text.includes(secret));
  const notJson = await call("POST", "/v1/configs", `{"name": "x", "origin": {"password": "${secret}"`);
  assert.equal(notJson.status, 400);
  assert.deepEqual(notJson.json.error.problems, [
    { field: "(root)", message: "the body is not valid JSON; send a JSON object" },
  ]);
  assert.ok(!notJson.text.includes(secret));
  assert.equal((await call("POST", "/v1/configs", "")).status, 400);
  assert.equal((await call("POST", "/v1/configs", "[]")).status, 400);
  assert.equal((await call("PATCH", `/v1/configs/${FAKE_CONFIG}`, "nope")).status, 400);
  const big = await call("POST", "/v1/configs", { name: "x".repeat(2 * 1024 * 1024) });
  assert.equal(big.status, 413);
  // Not a single logged field holds a secret.
  assert.ok(!JSON.stringify(logged).includes(secret));
  assert.ok(!JSON.stringify(logged).includes(token));
});

test("404 for unknown ids and routes, 405 for a wrong method, 409 for a taken name", async () => {
  for (const [method, path] of ROUTES.slice(4)) {
    const r = await call(method, path, method === "PATCH" ? { poolSize: 2 } : undefined);
    assert.equal(r.status, 404, `${method} ${path}`);
    assert.equal(r.json.error.code, "NOT_FOUND");
  }
  assert.equal((await call("GET", "/v1/configs/not-an-id")).status, 404);
  const put = await call("PUT", "/v1/configs");
  assert.equal(put.status, 405);
  assert.equal(put.json.error.code, "METHOD_NOT_ALLOWED");
  assert.equal(put.headers.get("Allow"), "GET, POST, HEAD");
  assert.equal((await call("GET", `/v1/configs/${FAKE_CONFIG}/credentials/rotate`)).status, 405);

  const first = await call("POST", "/v1/configs", { name: "taken", origin: origin() });
  assert.equal(first.status, 201);
  const again = await call("POST", "/v1/configs", { name: "taken", origin: origin() });
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, "CONFLICT");
  assert.match(again.json.error.message, /"taken"/);
  const other = await call("POST", "/v1/configs", { name: "taken-2", origin: origin() });
  const rename = await call("PATCH", `/v1/configs/${other.json.config.id}`, { name: "taken" });
  assert.equal(rename.status, 409);
});

test("mint shows the password once; list never; rotate and revoke", async () => {
  const { json } = await call("POST", "/v1/configs", { name: "creds", origin: origin() });
  const id: string = json.config.id;
  const minted = await call("POST", `/v1/configs/${id}/credentials`);
  assert.equal(minted.status, 201, minted.text);
  const first: Credential = minted.json.credential;
  assert.match(first.id, /^pgc_[A-Za-z0-9_-]{24}$/);
  assert.match(first.user, /^pgb_u_[a-z0-9]{20}$/);
  assert.equal(first.status, "active");
  assert.equal(first.expiresAt, null);
  assert.equal(first.revokedAt, null);
  assert.equal(first.configId, id);
  const password: string = minted.json.password;
  assert.equal(Buffer.from(password, "base64url").length, 32);
  assert.equal(
    minted.json.connectionString,
    `postgres://${first.user}:${password}@gw.example:6432/${id}?sslmode=require`,
  );
  assert.equal((await call("POST", `/v1/configs/${id}/credentials`, { extra: 1 })).status, 400);

  const listed = await call("GET", `/v1/configs/${id}/credentials`);
  assert.ok(!listed.text.includes(password), "the password is shown only when minting");
  assert.deepEqual(listed.json.credentials, [first]);

  const second = (await call("POST", `/v1/configs/${id}/credentials`, {})).json.credential as Credential;
  const before = Date.now();
  const rotated = await call("POST", `/v1/configs/${id}/credentials/rotate`, { graceSeconds: 600 });
  assert.equal(rotated.status, 201, rotated.text);
  assert.ok(rotated.json.password);
  const third: Credential = rotated.json.credential;
  const all = (await call("GET", `/v1/configs/${id}/credentials`)).json.credentials as Credential[];
  assert.deepEqual(
    all.map((c) => c.id),
    [third.id, second.id, first.id],
    "newest first",
  );
  for (const old of all.slice(1)) {
    assert.equal(old.status, "expiring");
    const expires = Date.parse(old.expiresAt ?? "");
    assert.ok(Math.abs(expires - (before + 600_000)) < 5_000, "expiresAt = now + grace");
  }
  assert.equal(all[0]?.status, "active");

  const revoked = await call("POST", `/v1/configs/${id}/credentials/${first.id}/revoke`);
  assert.equal(revoked.status, 200);
  assert.equal(revoked.json.credential.status, "revoked");
  assert.ok(revoked.json.credential.revokedAt);
  const again = await call("POST", `/v1/configs/${id}/credentials/${first.id}/revoke`);
  assert.equal(again.json.credential.revokedAt, revoked.json.credential.revokedAt, "idempotent");

  const immediate = await call("POST", `/v1/configs/${id}/credentials/rotate`, { graceSeconds: 0 });
  assert.equal(immediate.status, 201);
  const statuses = (
    (await call("GET", `/v1/configs/${id}/credentials`)).json.credentials as Credential[]
  ).map((c) => c.status);
  // The newest; the one active at the instant rotation (grace 0); the one expiring since the first rotation; the revoked one.
  assert.deepEqual(statuses, ["active", "expired", "expiring", "revoked"]);
  assert.equal(
    (await call("POST", `/v1/configs/${id}/credentials/rotate`, { graceSeconds: "1h" })).status,
    400,
  );

  // Deleting the config takes its credentials with it.
  await call("DELETE", `/v1/configs/${id}`);
  assert.equal((await call("GET", `/v1/configs/${id}/credentials`)).status, 404);
});

test("without a gateway URL, info says null and minted connection strings are null", async () => {
  const bare = createApi(registry);
  const headers = { Authorization: `Bearer ${token}` };
  const info = await (await bare.request("/v1/info", { headers })).json();
  assert.deepEqual((info as { gateway: unknown }).gateway, null);
  const { config } = await registry.createConfig({ name: "bare", origin: origin() });
  const minted = (await (
    await bare.request(`/v1/configs/${config.id}/credentials`, { method: "POST", headers })
  ).json()) as { connectionString: unknown };
  assert.equal(minted.connectionString, null);
});
