import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import postgres from "postgres";
import { createTestPki, type TestPki } from "../../../test-support/pki.ts";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { BindingResolver, type PostgresConnection, pgConfig, postgresOptions } from "../src/index.ts";

// The password and user name from the contract's test list: every URL-special character plus non-ASCII.
const NASTY_PASSWORD = `p@ss:w/o#r%d?&=+ 密码é'"\\[]!$`;
const NASTY_USER = "we@ird:user";
// postgres.js does not percent-decode the database in a URL, so URL-style tests use a URL-safe name and
// one test covers a name that needs encoding, in the styles that support it.
const DATABASE = "app_db";
const ENCODED_DATABASE = "app db-é";
const LISTEN = "127.0.0.1,127.0.0.2,::1";

let pki: TestPki;
let plain: TestPostgres;
let tlsOnly: TestPostgres;

async function setUpRoles(server: TestPostgres): Promise<void> {
  const admin = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database: "postgres",
    ssl: server === plain ? false : { rejectUnauthorized: false },
  });
  await admin.connect();
  try {
    const pw = admin.escapeLiteral(NASTY_PASSWORD);
    await admin.query(`create role ${admin.escapeIdentifier(NASTY_USER)} login password ${pw}`);
    await admin.query(`create role app login password ${pw}`);
    await admin.query(`create database ${admin.escapeIdentifier(DATABASE)} owner app`);
    await admin.query(`create database ${admin.escapeIdentifier(ENCODED_DATABASE)} owner app`);
  } finally {
    await admin.end();
  }
}

function resolverFor(binding: Record<string, unknown>): Promise<PostgresConnection> {
  const resolver = new BindingResolver({ preferProbeTimeoutMs: 3_000 });
  return resolver.getPostgresConnection("db", { env: { PGBIND_DB_BINDING: JSON.stringify(binding) } });
}

function binding(server: TestPostgres, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    service: "external",
    host: "127.0.0.1",
    port: server.port,
    database: DATABASE,
    username: "app",
    password: NASTY_PASSWORD,
    ...extra,
  };
}

const PROBE = `select current_user as "user", current_database() as db,
  coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as ssl`;

interface Seen {
  user: string;
  db: string;
  ssl: boolean;
}

async function viaPgFields(conn: PostgresConnection): Promise<Seen> {
  const client = new pg.Client(pgConfig(conn));
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query(PROBE)).rows[0] as Seen;
  } finally {
    await client.end();
  }
}

async function viaPgUrl(conn: PostgresConnection): Promise<Seen> {
  const client = new pg.Client({ connectionString: conn.connectionString });
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query(PROBE)).rows[0] as Seen;
  } finally {
    await client.end();
  }
}

async function viaPostgresJs(conn: PostgresConnection, style: "fields" | "url"): Promise<Seen> {
  const sql =
    style === "fields"
      ? postgres({ ...postgresOptions(conn), password: conn.password, max: 1, onnotice: () => {} })
      : // A URL carries no CA, so pass ssl alongside when the binding verifies against a private CA.
        postgres(conn.connectionString, {
          max: 1,
          onnotice: () => {},
          ...(hasCa(conn) ? { ssl: conn.ssl } : {}),
        });
  try {
    const [row] = await sql.unsafe(PROBE);
    return row as unknown as Seen;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

function hasCa(conn: PostgresConnection): boolean {
  return conn.ssl !== false && conn.ssl.ca !== undefined;
}

before(async () => {
  pki = await createTestPki();
  [plain, tlsOnly] = await Promise.all([
    startTestPostgres(),
    startTestPostgres({
      listenAddresses: LISTEN,
      tls: { cert: pki.serverCert, key: pki.serverKey, required: true },
    }),
  ]);
  await Promise.all([setUpRoles(plain), setUpRoles(tlsOnly)]);
});

after(async () => {
  await Promise.all([plain?.stop(), tlsOnly?.stop()]);
});

describe("against a plaintext server", () => {
  it("local binding connects with pg and postgres.js, fields and URL, for a password full of URL syntax", async () => {
    const conn = await resolverFor({ ...binding(plain, {}), service: "local" });
    assert.equal(conn.sslmode, "disable");
    assert.equal(conn.ssl, false);
    for (const seen of [
      await viaPgFields(conn),
      await viaPgUrl(conn),
      await viaPostgresJs(conn, "fields"),
      await viaPostgresJs(conn, "url"),
    ]) {
      assert.deepEqual(seen, { user: "app", db: DATABASE, ssl: false });
    }
  });

  it("a database name that needs percent-encoding works with pg (fields and URL) and postgres.js fields", async () => {
    const conn = await resolverFor({ ...binding(plain, {}), service: "local", database: ENCODED_DATABASE });
    assert.match(conn.connectionString, /\/app%20db-%C3%A9\?/);
    assert.equal((await viaPgUrl(conn)).db, ENCODED_DATABASE);
    assert.equal((await viaPgFields(conn)).db, ENCODED_DATABASE);
    assert.equal((await viaPostgresJs(conn, "fields")).db, ENCODED_DATABASE);
  });

  it("a user name with @ and : survives the URL in both drivers", async () => {
    const conn = await resolverFor({ ...binding(plain, {}), service: "local", username: NASTY_USER });
    assert.equal((await viaPgUrl(conn)).user, NASTY_USER);
    assert.equal((await viaPostgresJs(conn, "url")).user, NASTY_USER);
    assert.equal((await viaPgFields(conn)).user, NASTY_USER);
  });

  it("prefer finds no TLS and connects in plaintext, as libpq does", async () => {
    const conn = await resolverFor(binding(plain, { sslmode: "prefer" }));
    assert.equal(conn.sslmode, "prefer");
    assert.equal(conn.ssl, false);
    assert.equal((await viaPgFields(conn)).ssl, false);
    assert.equal((await viaPostgresJs(conn, "url")).ssl, false);
  });

  it("require never downgrades to plaintext", async () => {
    const conn = await resolverFor(binding(plain, { sslmode: "require" }));
    assert.deepEqual(conn.ssl, { rejectUnauthorized: false });
    await assert.rejects(viaPgFields(conn), /does not support SSL/);
    await assert.rejects(viaPostgresJs(conn, "fields"));
  });
});

describe("against a TLS-only server with a private CA", () => {
  it("require connects over TLS with pg fields and postgres.js fields and URL", async () => {
    const conn = await resolverFor(binding(tlsOnly, { sslmode: "require" }));
    assert.deepEqual(conn.ssl, { rejectUnauthorized: false });
    assert.equal((await viaPgFields(conn)).ssl, true);
    assert.equal((await viaPostgresJs(conn, "fields")).ssl, true);
    assert.equal((await viaPostgresJs(conn, "url")).ssl, true);
  });

  it("gateway bindings default to require", async () => {
    const conn = await resolverFor({ ...binding(tlsOnly, {}), service: "gateway" });
    assert.equal(conn.sslmode, "require");
    assert.equal((await viaPgFields(conn)).ssl, true);
  });

  for (const host of ["localhost", "127.0.0.1", "::1"]) {
    it(`verify-full with the CA connects to ${host}, in both drivers and both styles`, async () => {
      const conn = await resolverFor(
        binding(tlsOnly, { host, sslmode: "verify-full", sslrootcert: pki.caCert }),
      );
      assert.equal(conn.ssl !== false && conn.ssl.rejectUnauthorized, true);
      assert.equal((await viaPgFields(conn)).ssl, true);
      assert.equal((await viaPostgresJs(conn, "fields")).ssl, true);
      // postgres.js cannot parse an IPv6 literal in a URL; postgresOptions() covers that case.
      if (host !== "::1") assert.equal((await viaPostgresJs(conn, "url")).ssl, true);
      else assert.match(conn.connectionString, /@\[::1\]:\d+\//);
    });
  }

  it("verify-full rejects a server whose certificate another CA signed", async () => {
    const conn = await resolverFor(
      binding(tlsOnly, { sslmode: "verify-full", sslrootcert: pki.otherCaCert }),
    );
    await assert.rejects(viaPgFields(conn), /certificate/i);
    await assert.rejects(viaPostgresJs(conn, "fields"), /certificate/i);
  });

  it("verify-full rejects a host name the certificate does not name; verify-ca accepts it", async () => {
    const full = await resolverFor(
      binding(tlsOnly, { host: "127.0.0.2", sslmode: "verify-full", sslrootcert: pki.caCert }),
    );
    await assert.rejects(viaPgFields(full), /IP: 127\.0\.0\.2 is not in the cert's list|altnames/i);
    const ca = await resolverFor(
      binding(tlsOnly, { host: "127.0.0.2", sslmode: "verify-ca", sslrootcert: pki.caCert }),
    );
    assert.equal((await viaPgFields(ca)).ssl, true);
    assert.equal((await viaPostgresJs(ca, "fields")).ssl, true);
  });

  it("prefer finds TLS and uses it", async () => {
    const conn = await resolverFor(binding(tlsOnly, { sslmode: "prefer" }));
    assert.deepEqual(conn.ssl, { rejectUnauthorized: false });
    assert.equal((await viaPgFields(conn)).ssl, true);
    assert.equal((await viaPostgresJs(conn, "url")).ssl, true);
  });

  it("a binding forced to disable fails against a TLS-only server instead of downgrading", async () => {
    const conn = await resolverFor(binding(tlsOnly, { sslmode: "disable" }));
    assert.equal(conn.ssl, false);
    await assert.rejects(viaPgFields(conn), /no pg_hba\.conf entry|no encryption/);
    await assert.rejects(viaPostgresJs(conn, "url"), /no pg_hba\.conf entry|no encryption/);
  });

  it("with pg, the URL's sslmode=require is pg's verify-full: pgConfig is the way, as the README says", async () => {
    const conn = await resolverFor(binding(tlsOnly, { sslmode: "require" }));
    // The seed's pitfall, shown: pg reads sslmode=require from the URL as verify-full.
    await assert.rejects(viaPgUrl(conn), /self-signed|certificate/i);
    assert.equal("connectionString" in pgConfig(conn), false);
    assert.equal((await viaPgFields(conn)).ssl, true);
  });
});

describe("prefer probe", () => {
  it("reports DATABASE_UNREACHABLE (retryable) when nothing listens", async () => {
    const resolver = new BindingResolver({ preferProbeTimeoutMs: 300 });
    const env = { PGBIND_DB_BINDING: JSON.stringify({ ...binding(plain, {}), port: 1 }) };
    await assert.rejects(resolver.getPostgresConnection("db", { env }), (error: unknown) => {
      const e = error as { code: string; retryable: boolean; message: string };
      assert.equal(e.code, "DATABASE_UNREACHABLE");
      assert.equal(e.retryable, true);
      assert.doesNotMatch(e.message, /w\/o#r/);
      return true;
    });
  });
});
