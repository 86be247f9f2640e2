import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import pg from "pg";
import { createTestPki } from "../../../test-support/pki.ts";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { createSelfSignedCertificate, Gateway, type SelfSignedCertificate } from "../src/index.ts";
import { staticSource, testBinding } from "./support.ts";

describe("createSelfSignedCertificate", () => {
  it("makes an ECDSA P-256 end-entity certificate for localhost, 127.0.0.1, ::1 and the given hosts", async () => {
    const made = await createSelfSignedCertificate({
      hosts: ["DB.Example.test", "10.1.2.3", "[::1]", "0:0:0:0:0:0:0:1", "fe80::1", "localhost"],
      days: 2,
    });
    const x509 = new X509Certificate(made.cert);
    assert.deepEqual(made.hosts, ["localhost", "db.example.test", "127.0.0.1", "::1", "10.1.2.3", "fe80::1"]);
    assert.equal(
      x509.subjectAltName,
      "DNS:localhost, DNS:db.example.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.1.2.3, IP Address:FE80:0:0:0:0:0:0:1",
    );
    assert.equal(made.fingerprint256, x509.fingerprint256);
    assert.match(made.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(x509.ca, false);
    assert.ok(x509.checkIssued(x509), "self-signed");
    assert.ok(x509.verify(x509.publicKey), "the signature verifies with its own key");
    assert.ok(x509.checkPrivateKey(createPrivateKey(made.key)), "the key belongs to the certificate");
    assert.equal(x509.publicKey.asymmetricKeyType, "ec");
    assert.equal(x509.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.deepEqual(x509.keyUsage, ["1.3.6.1.5.5.7.3.1"], "extKeyUsage serverAuth");
    assert.ok(x509.checkHost("db.example.test") && x509.checkIP("10.1.2.3") && x509.checkIP("::1"));
    assert.equal(x509.checkHost("other.example.test"), undefined);
    const validFor = new Date(x509.validTo).getTime() - new Date(x509.validFrom).getTime();
    assert.equal(validFor, 2 * 86_400_000);
    assert.ok(new Date(x509.validFrom).getTime() < Date.now(), "valid now, with room for clock skew");
    assert.equal(made.notAfter.getTime(), new Date(x509.validTo).getTime());
    // The certificate text carries no key material; the key is unencrypted PKCS#8 PEM.
    assert.throws(() => createPrivateKey(made.cert));
    assert.equal(createPrivateKey(made.key).export({ type: "pkcs8", format: "pem" }), made.key);

    const other = await createSelfSignedCertificate({ hosts: [] });
    assert.notEqual(other.fingerprint256, made.fingerprint256, "a new key and serial every call");
  });

  it("refuses hosts that are neither IP addresses nor DNS names, and bad validity periods", async () => {
    for (const host of ["", "a b", "under_score.example", "-lead.example", "x".repeat(64), "db/1"]) {
      await assert.rejects(createSelfSignedCertificate({ hosts: [host] }), TypeError, host);
    }
    for (const days of [0, 1.5, 826, Number.NaN]) {
      await assert.rejects(createSelfSignedCertificate({ hosts: [], days }), /days: .* is not an integer/);
    }
  });
});

describe("a gateway with a self-signed certificate", () => {
  let origin: TestPostgres;
  let gateway: Gateway;
  let port: number;
  let made: SelfSignedCertificate;
  let otherCa: string;

  before(async () => {
    [origin, made, otherCa] = await Promise.all([
      startTestPostgres(),
      createSelfSignedCertificate({ hosts: ["gateway.test"] }),
      createTestPki().then((pki) => pki.caCert),
    ]);
    gateway = new Gateway({
      source: staticSource({ bindings: [testBinding(origin, { password: "client-pw" })] }),
      port: 0,
      tls: tls.createSecureContext({ cert: made.cert, key: made.key }),
    });
    port = (await gateway.start()).port;
  });
  after(async () => {
    await gateway?.close(1_000);
    await origin?.stop();
  });

  const connect = async (ssl: pg.ClientConfig["ssl"]) => {
    const client = new pg.Client({
      host: "127.0.0.1",
      port,
      user: "app",
      password: "client-pw",
      database: "db",
      ssl,
    });
    client.on("error", () => {});
    await client.connect();
    try {
      const socket = (client as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream;
      assert.ok(socket instanceof tls.TLSSocket && socket.authorized, "verified TLS to the gateway");
      return (await client.query("select 1 as one")).rows[0].one as number;
    } finally {
      await client.end();
    }
  };

  it("is verified (verify-full) by a client that trusts it, under each of its names", async () => {
    // host 127.0.0.1 with servername localhost: the name is checked against the SANs, as libpq's verify-full does.
    assert.equal(await connect({ ca: made.cert, rejectUnauthorized: true, servername: "localhost" }), 1);
    assert.equal(await connect({ ca: made.cert, rejectUnauthorized: true, servername: "gateway.test" }), 1);
    // No servername: node-postgres leaves it out for an IP host, and the IP SAN is what matches.
    assert.equal(await connect({ ca: made.cert, rejectUnauthorized: true }), 1);
  });

  it("is refused by a client trusting another CA, and for a name it does not cover", async () => {
    await assert.rejects(
      connect({ ca: otherCa, rejectUnauthorized: true, servername: "localhost" }),
      (error: NodeJS.ErrnoException) => {
        assert.match(String(error.code), /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/);
        return true;
      },
    );
    await assert.rejects(
      connect({ rejectUnauthorized: true, servername: "localhost" }),
      (error: NodeJS.ErrnoException) => error.code === "DEPTH_ZERO_SELF_SIGNED_CERT",
      "not trusted by the system CAs",
    );
    await assert.rejects(
      connect({ ca: made.cert, rejectUnauthorized: true, servername: "db.elsewhere.test" }),
      (error: NodeJS.ErrnoException) => error.code === "ERR_TLS_CERT_ALTNAME_INVALID",
    );
  });
});
