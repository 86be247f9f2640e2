import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { createTestPki } from "../../../test-support/pki.ts";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { BindingResolver, type PgBindError, pgConfig, type ResolverOptions } from "../src/index.ts";
import { type FakeSecretsManager, startFakeSecretsManager } from "./support/aws-secrets-server.ts";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:aurora/app-AbCdEf";
const FIRST = "first:p@ss/word#1";
const SECOND = "second:p@ss/word#2";

let db: TestPostgres;
let aws: FakeSecretsManager;

function auroraEnv(arn = ARN) {
  return {
    PGBIND_DB_BINDING: JSON.stringify({
      service: "aurora",
      host: "localhost",
      port: db.port,
      database: "postgres",
      username: "app",
      region: "us-east-1",
      passwordSecretArn: arn,
    }),
  };
}

function resolver(extra: ResolverOptions = {}) {
  return new BindingResolver({
    env: auroraEnv(),
    secretStores: {
      aws: { endpoint: aws.endpoint, credentials: { accessKeyId: "AKID", secretAccessKey: "k" } },
    },
    retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
    ...extra,
  });
}

async function setPassword(password: string) {
  const admin = new pg.Client({
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    database: "postgres",
    ssl: { rejectUnauthorized: false },
  });
  await admin.connect();
  await admin.query(`alter role app password ${admin.escapeLiteral(password)}`);
  await admin.end();
}

async function whoAmI(resolved: Awaited<ReturnType<BindingResolver["getPostgresConnection"]>>) {
  const client = new pg.Client(pgConfig(resolved));
  await client.connect();
  try {
    const { rows } = await client.query(
      "select current_user as user, (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl",
    );
    return rows[0] as { user: string; ssl: boolean };
  } finally {
    await client.end();
  }
}

before(async () => {
  const pki = await createTestPki();
  [db, aws] = await Promise.all([
    startTestPostgres({ tls: { cert: pki.serverCert, key: pki.serverKey, required: true } }),
    startFakeSecretsManager(),
  ]);
  const admin = new pg.Client({
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    database: "postgres",
    ssl: { rejectUnauthorized: false },
  });
  await admin.connect();
  await admin.query(`create role app login password ${admin.escapeLiteral(FIRST)}`);
  await admin.end();
});

after(async () => {
  await Promise.all([db?.stop(), aws?.close()]);
});

describe("an aurora binding end to end", () => {
  it("reads the password from Secrets Manager and connects over TLS (require)", async () => {
    aws.setSecret(ARN, FIRST);
    const conn = await resolver().getPostgresConnection("db");
    assert.equal(conn.sslmode, "require");
    assert.deepEqual(await whoAmI(conn), { user: "app", ssl: true });
  });

  it("takes the user name from an RDS JSON secret", async () => {
    aws.setSecret(ARN, JSON.stringify({ username: "app", password: FIRST, engine: "postgres", port: 5432 }));
    const conn = await resolver().getPostgresConnection("db");
    assert.equal(conn.username, "app");
    assert.equal(conn.password, FIRST);
  });

  it("caches the secret and shares one fetch between concurrent callers", async () => {
    aws.setSecret(ARN, FIRST);
    const r = resolver();
    const before = aws.requests;
    const all = await Promise.all(Array.from({ length: 8 }, () => r.getPostgresConnection("db")));
    assert.equal(aws.requests - before, 1);
    await r.getPostgresConnection("db");
    assert.equal(aws.requests - before, 1, "a second call within the TTL is served from the cache");
    assert.ok(all.every((c) => c.password === FIRST));
  });

  it("refresh: true re-reads a rotated password; without it the cached one is kept until the TTL", async () => {
    aws.setSecret(ARN, FIRST);
    await setPassword(FIRST);
    const r = resolver();
    assert.equal((await whoAmI(await r.getPostgresConnection("db"))).user, "app");

    aws.setSecret(ARN, SECOND);
    await setPassword(SECOND);
    const stale = await r.getPostgresConnection("db");
    assert.equal(stale.password, FIRST);
    await assert.rejects(whoAmI(stale), /password authentication failed/);

    const fresh = await r.getPostgresConnection("db", { refresh: true });
    assert.equal(fresh.password, SECOND);
    assert.equal((await whoAmI(fresh)).user, "app");
    await setPassword(FIRST);
  });

  it("secretCacheTtlMs: 0 reads the store every time", async () => {
    aws.setSecret(ARN, FIRST);
    const r = resolver({ secretCacheTtlMs: 0 });
    const before = aws.requests;
    await r.getPostgresConnection("db");
    await r.getPostgresConnection("db");
    assert.equal(aws.requests - before, 2);
  });

  it("retries throttling with backoff and then succeeds", async () => {
    aws.setSecret(ARN, FIRST);
    aws.failNext(2, "ThrottlingException");
    const before = aws.requests;
    const conn = await resolver().getPostgresConnection("db");
    assert.equal(conn.password, FIRST);
    assert.equal(aws.requests - before, 3);
  });

  it("gives up after the configured attempts with a retryable error", async () => {
    aws.setSecret(ARN, FIRST);
    aws.failNext(5, "ThrottlingException");
    const before = aws.requests;
    await assert.rejects(resolver().getPostgresConnection("db"), (error: PgBindError) => {
      assert.equal(error.code, "POSTGRES_SECRET_RESOLUTION_ERROR");
      assert.equal(error.retryable, true);
      assert.match(error.message, /ThrottlingException/);
      return true;
    });
    assert.equal(aws.requests - before, 3);
    // A failure is not cached: the next call fetches again (two throttles are left, the third attempt wins).
    assert.equal((await resolver().getPostgresConnection("db")).password, FIRST);
    assert.equal(aws.requests - before, 6);
  });

  it("does not retry a secret that does not exist", async () => {
    const missing = `${ARN.slice(0, -6)}Gone00`;
    const before = aws.requests;
    await assert.rejects(
      resolver({ env: auroraEnv(missing) }).getPostgresConnection("db"),
      (error: PgBindError) => error.retryable === false && error.message.includes(missing),
    );
    assert.equal(aws.requests - before, 1);
  });

  it("times out a secret store that never answers, as a retryable failure", async () => {
    const sockets = new Set<import("node:net").Socket>();
    const silent = http.createServer(() => {});
    silent.on("connection", (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const r = new BindingResolver({
        env: auroraEnv(),
        secretStores: { aws: { endpoint, credentials: { accessKeyId: "AKID", secretAccessKey: "k" } } },
        retry: { attempts: 2, baseDelayMs: 1 },
        secretTimeoutMs: 150,
      });
      await assert.rejects(r.getPostgresConnection("db"), (error: PgBindError) => {
        assert.equal(error.retryable, true);
        assert.match(error.message, /did not answer within 150 ms/);
        return true;
      });
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});
