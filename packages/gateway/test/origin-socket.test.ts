import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { createTestPki, type TestPki } from "../../../test-support/pki.ts";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import type { OriginConfig, OriginSslMode } from "../src/config.ts";
import {
  connectTcp,
  negotiateOriginTls,
  OriginConnectError,
  withConnectRetry,
} from "../src/origin-socket.ts";

let pki: TestPki;
let plain: TestPostgres;
let secure: TestPostgres;

before(async () => {
  pki = await createTestPki();
  [plain, secure] = await Promise.all([
    startTestPostgres(),
    startTestPostgres({
      listenAddresses: "127.0.0.1,127.0.0.2",
      tls: { cert: pki.serverCert, key: pki.serverKey },
    }),
  ]);
});
after(() => Promise.all([plain?.stop(), secure?.stop()]));

function origin(
  server: TestPostgres,
  sslmode: OriginSslMode,
  extra: Partial<OriginConfig> = {},
): OriginConfig {
  return {
    host: "127.0.0.1",
    port: server.port,
    database: "postgres",
    user: "postgres",
    password: "x",
    sslmode,
    ...extra,
  };
}

async function negotiate(o: OriginConfig) {
  const socket = await connectTcp(o.host, o.port, 2_000);
  const result = await negotiateOriginTls(socket, o, 2_000);
  const encrypted = result instanceof tls.TLSSocket;
  result.destroy();
  return encrypted;
}

describe("origin TLS per sslmode", () => {
  it("disable and prefer-without-TLS stay plaintext; require refuses a plaintext origin", async () => {
    assert.equal(await negotiate(origin(plain, "disable")), false);
    assert.equal(await negotiate(origin(plain, "prefer")), false);
    await assert.rejects(negotiate(origin(plain, "require")), /does not accept TLS, but sslmode is require/);
  });

  it("prefer and require use TLS when offered", async () => {
    assert.equal(await negotiate(origin(secure, "prefer")), true);
    assert.equal(await negotiate(origin(secure, "require")), true);
  });

  it("verify-full checks chain and name; verify-ca checks the chain only", async () => {
    assert.equal(
      await negotiate(origin(secure, "verify-full", { host: "localhost", sslrootcert: pki.caCert })),
      true,
    );
    await assert.rejects(
      negotiate(origin(secure, "verify-full", { sslrootcert: pki.otherCaCert })),
      /TLS .* failed/,
    );
    await assert.rejects(
      negotiate(origin(secure, "verify-full", { host: "127.0.0.2", sslrootcert: pki.caCert })),
      /TLS .* failed/,
    );
    assert.equal(
      await negotiate(origin(secure, "verify-ca", { host: "127.0.0.2", sslrootcert: pki.caCert })),
      true,
    );
  });

  it("refuses bytes injected after the S answer (CVE-2021-23222)", async () => {
    const evil = net.createServer((s) => s.once("data", () => s.write(Buffer.from("SE\0\0\0\x05"))));
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    try {
      const port = (evil.address() as net.AddressInfo).port;
      await assert.rejects(
        negotiate({ ...origin(plain, "require"), port }),
        /sent data before the TLS handshake/,
      );
    } finally {
      evil.close();
    }
  });
});

describe("connect retry", () => {
  it("keeps trying an origin that comes up 1.5 s later", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const late = net.createServer((s) => s.end());
    setTimeout(() => late.listen(port, "127.0.0.1"), 1_500);
    try {
      const started = Date.now();
      const socket = await withConnectRetry(
        (remaining) => connectTcp("127.0.0.1", port, Math.min(remaining, 1_000)),
        10_000,
      );
      socket.destroy();
      assert.ok(Date.now() - started >= 1_400);
    } finally {
      late.close();
    }
  });

  it("gives up when the budget runs out, and does not retry permanent failures", async () => {
    await assert.rejects(
      withConnectRetry((remaining) => connectTcp("127.0.0.1", 1, Math.min(remaining, 500)), 300),
      (e: unknown) => e instanceof OriginConnectError && e.retryable,
    );
    let attempts = 0;
    await assert.rejects(
      withConnectRetry(async () => {
        attempts++;
        throw new OriginConnectError("bad certificate", false);
      }, 5_000),
      /bad certificate/,
    );
    assert.equal(attempts, 1);
  });
});
