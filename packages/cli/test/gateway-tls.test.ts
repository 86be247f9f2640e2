import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { promisify } from "node:util";
import { createTestPki } from "../../../test-support/pki.ts";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { gatewayClient, literal, startGateway } from "./gateway-support.ts";

const run = promisify(execFile);
const psql = (() => {
  try {
    execFileSync("psql", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("pgbind gateway --tls-self-signed", () => {
  let origin: TestPostgres;
  let dir: { path: string; remove: () => Promise<void> };
  let otherCa: string;
  let originUrl: string;

  before(async () => {
    let pki: Awaited<ReturnType<typeof createTestPki>>;
    [origin, dir, pki] = await Promise.all([startTestPostgres(), makeTempDir("gw-tls"), createTestPki()]);
    otherCa = pki.caCert;
    originUrl = `postgres://${origin.user}:${encodeURIComponent(origin.password)}@127.0.0.1:${origin.port}/postgres?sslmode=disable`;
  });
  after(async () => {
    await origin?.stop();
    await dir?.remove();
  });

  it("writes its certificate for sslrootcert, prints the fingerprint, and passes verify-full", async () => {
    const gw = startGateway(
      [
        "--origin",
        originUrl,
        "--user",
        "app",
        "--password",
        "app-pw",
        "--listen",
        "127.0.0.1:0",
        "--tls-self-signed",
      ],
      { cwd: dir.path },
    );
    try {
      const port = await gw.listening;
      const file = path.join(dir.path, ".pgbind/gateway/self-signed.crt");
      const cert = await readFile(file, "utf8");
      assert.throws(() => createPrivateKey(cert), "only the certificate is written, no key");
      assert.equal((await stat(file)).mode & 0o777, 0o644);
      const x509 = new X509Certificate(cert);
      const { stdout } = gw.output();
      assert.match(stdout, literal(`SHA-256 fingerprint ${x509.fingerprint256}\n`));
      assert.match(
        stdout,
        literal(`written to ${file}; clients verify it with sslmode=verify-full sslrootcert=${file}`),
      );
      assert.match(
        stdout,
        literal(
          `@127.0.0.1:<port>/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(file).replaceAll("%2F", "/")}\n`,
        ),
      );
      const logged = await gw.waitForLog((l) => l.event === "tls_self_signed");
      assert.equal(logged.fingerprint256, x509.fingerprint256);
      assert.equal(logged.file, file);
      assert.equal((await gw.waitForLog((l) => l.event === "listening")).tls, "self-signed");

      const connect = async (ssl: Record<string, unknown>) => {
        const client = gatewayClient(port, { user: "app", password: "app-pw", database: "postgres", ssl });
        await client.connect();
        try {
          const socket = (client as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream;
          assert.ok(socket instanceof tls.TLSSocket && socket.authorized);
          assert.equal(socket.getPeerX509Certificate()?.fingerprint256, x509.fingerprint256);
          return (await client.query("select 40 + 2 as n")).rows[0].n as number;
        } finally {
          await client.end();
        }
      };
      // verify-full: the chain ends at the pinned certificate and the name (localhost, or the IP) is in its SANs.
      assert.equal(await connect({ ca: cert, rejectUnauthorized: true, servername: "localhost" }), 42);
      assert.equal(await connect({ ca: cert, rejectUnauthorized: true }), 42);
      await assert.rejects(connect({ ca: otherCa, rejectUnauthorized: true, servername: "localhost" }), {
        code: "DEPTH_ZERO_SELF_SIGNED_CERT",
      });
      await assert.rejects(connect({ ca: cert, rejectUnauthorized: true, servername: "db.example.test" }), {
        code: "ERR_TLS_CERT_ALTNAME_INVALID",
      });

      if (psql) {
        // libpq's own verify-full (OpenSSL, IP SAN matching) with the file as sslrootcert.
        const conninfo = (rootcert: string) =>
          `host=127.0.0.1 port=${port} user=app dbname=postgres sslmode=verify-full sslrootcert=${rootcert}`;
        const env = { PATH: process.env.PATH ?? "", PGPASSWORD: "app-pw", PGCONNECT_TIMEOUT: "5" };
        const ok = await run("psql", [conninfo(file), "-XAtc", "select 'verified'"], { env });
        assert.equal(ok.stdout.trim(), "verified");
        const otherFile = path.join(dir.path, "other-ca.crt");
        await writeFile(otherFile, otherCa);
        await assert.rejects(
          run("psql", [conninfo(otherFile), "-XAtc", "select 1"], { env }),
          (error: { stderr: string }) => {
            assert.match(error.stderr, /certificate verify failed/);
            return true;
          },
        );
      }
      assert.equal(await gw.stop(), 0);
    } finally {
      gw.child.kill("SIGKILL");
    }
  });

  it("writes to --tls-dir, and a new run brings a new certificate", async () => {
    const args = [
      "--origin",
      originUrl,
      "--listen",
      "127.0.0.1:0",
      "--tls-self-signed",
      "--tls-dir",
      "certs",
    ];
    const fingerprints: string[] = [];
    for (let i = 0; i < 2; i++) {
      const gw = startGateway(args, { cwd: dir.path });
      try {
        await gw.listening;
        const cert = await readFile(path.join(dir.path, "certs/self-signed.crt"), "utf8");
        fingerprints.push(new X509Certificate(cert).fingerprint256);
        assert.match(gw.output().stdout, literal(fingerprints[i] as string));
        assert.equal(await gw.stop(), 0);
      } finally {
        gw.child.kill("SIGKILL");
      }
    }
    assert.notEqual(fingerprints[0], fingerprints[1]);
  });

  it("refuses --tls-self-signed with --tls-cert/--tls-key, and --tls-dir without it (exit 2)", async () => {
    for (const [args, message] of [
      [["--tls-self-signed", "--tls-cert", "a.crt", "--tls-key", "a.key"], /--tls-self-signed .* not both/],
      [["--tls-self-signed", "--tls-key", "a.key"], /--tls-self-signed .* not both/],
      [["--tls-dir", "certs"], /--tls-dir goes with --tls-self-signed/],
    ] as const) {
      const gw = startGateway(["--origin", originUrl, "--listen", "127.0.0.1:0", ...args], { cwd: dir.path });
      assert.equal(await gw.exited, 2);
      assert.match(gw.output().stderr, message);
    }
  });
});
