import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";
import { freePort } from "@pgbind/local-postgres";
import { createTestPki, type TestPki } from "../../../test-support/pki.ts";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { probeOrigin, type Warning } from "../src/index.ts";
import type { OriginSettings } from "../src/validation.ts";
import { createStore, openRegistry, testKey } from "./support.ts";

let server: TestPostgres;
let pki: TestPki;
let origin: OriginSettings;

before(async () => {
  pki = await createTestPki();
  // TLS only: plaintext connections are refused by pg_hba (hostssl).
  server = await startTestPostgres({ tls: { cert: pki.serverCert, key: pki.serverKey, required: true } });
  origin = {
    host: "127.0.0.1",
    port: server.port,
    database: "postgres",
    user: server.user,
    password: server.password,
    sslmode: "require",
  };
});
after(async () => {
  await server?.stop();
});

function codes(warnings: Warning[]): string[] {
  return warnings.map((w) => w.code);
}

function assertNoSecret(warnings: Warning[], secret: string) {
  for (const w of warnings) assert.ok(!w.message.includes(secret), "a warning must not contain the password");
}

test("a working origin gives no warning, for every sslmode that can work", async () => {
  const results = await Promise.all([
    probeOrigin(origin),
    probeOrigin({ ...origin, sslmode: "prefer" }),
    probeOrigin({ ...origin, sslmode: "verify-ca", sslrootcert: pki.caCert }),
    probeOrigin({ ...origin, sslmode: "verify-full", sslrootcert: pki.caCert }),
  ]);
  assert.deepEqual(results, [[], [], [], []]);
});

test("TLS warnings: required by the server, or failing verification", async () => {
  const [disabled, otherCa] = await Promise.all([
    probeOrigin({ ...origin, sslmode: "disable" }),
    probeOrigin({ ...origin, sslmode: "verify-full", sslrootcert: pki.otherCaCert }),
  ]);
  assert.deepEqual(codes(disabled), ["ORIGIN_TLS_REQUIRED"]);
  assert.deepEqual(codes(otherCa), ["ORIGIN_TLS_FAILED"]);
  assertNoSecret([...disabled, ...otherCa], server.password);

  // A server that declines TLS (answers N to the SSLRequest) while sslmode is require.
  const plain = net.createServer((socket) => {
    socket.once("data", () => socket.end("N"));
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
  try {
    const port = (plain.address() as net.AddressInfo).port;
    assert.deepEqual(codes(await probeOrigin({ ...origin, port })), ["ORIGIN_TLS_FAILED"]);
  } finally {
    plain.close();
  }
});

test("authentication and database warnings", async () => {
  const wrong = "definitely-the-wrong-password";
  const [auth, user, database] = await Promise.all([
    probeOrigin({ ...origin, password: wrong }),
    probeOrigin({ ...origin, user: "nobody" }),
    probeOrigin({ ...origin, database: "no_such_db" }),
  ]);
  assert.deepEqual(codes(auth), ["ORIGIN_AUTH_FAILED"]);
  assert.deepEqual(codes(user), ["ORIGIN_AUTH_FAILED"]);
  assert.deepEqual(codes(database), ["ORIGIN_DATABASE_MISSING"]);
  assert.match(database[0]?.message ?? "", /no_such_db/);
  assertNoSecret(auth, wrong);
  assertNoSecret([...user, ...database], server.password);
});

test("network warnings: closed port, name that does not resolve, silent server", async () => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  try {
    const started = Date.now();
    const [closed, dns, quiet] = await Promise.all([
      probeOrigin({ ...origin, port: await freePort() }),
      probeOrigin({ ...origin, host: "nonexistent.invalid" }),
      probeOrigin({ ...origin, port: (silent.address() as net.AddressInfo).port }, 600),
    ]);
    assert.deepEqual(codes(closed), ["ORIGIN_UNREACHABLE"]);
    assert.deepEqual(codes(dns), ["ORIGIN_DNS"]);
    assert.match(dns[0]?.message ?? "", /nonexistent\.invalid/);
    assert.deepEqual(codes(quiet), ["ORIGIN_UNREACHABLE"]);
    assert.ok(Date.now() - started < 4_000, "the budget bounds the probe");
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});

test("the registry stores a config anyway and returns the warning", async () => {
  const { registry, close } = await openRegistry(
    await createStore(server, { tls: true }),
    testKey(),
    probeOrigin,
  );
  try {
    const wrong = "wrong-origin-password";
    const created = await registry.createConfig({ name: "bad-auth", origin: { ...origin, password: wrong } });
    assert.deepEqual(codes(created.warnings), ["ORIGIN_AUTH_FAILED"]);
    assertNoSecret(created.warnings, wrong);
    assert.equal((await registry.listConfigs()).length, 1);
    // Fixing the password probes again; a change that leaves the origin alone does not.
    const fixed = await registry.updateConfig(created.config.id, { origin: { password: server.password } });
    assert.deepEqual(fixed.warnings, []);
    const renamed = await registry.updateConfig(created.config.id, { name: "good-auth", poolSize: 3 });
    assert.deepEqual(renamed.warnings, []);
    const moved = await registry.updateConfig(created.config.id, { origin: { sslmode: "disable" } });
    assert.deepEqual(codes(moved.warnings), ["ORIGIN_TLS_REQUIRED"]);
  } finally {
    await close();
  }
});
