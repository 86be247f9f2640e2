import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { inspect } from "node:util";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { BindingResolver, bindingEnvName, PgBindError, type PgBindErrorCode } from "../src/index.ts";

const SECRET = "s3cr3t-PW-never-shown";
const CERT = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

function resolve(value: unknown, name = "db", extraEnv: Record<string, string> = {}) {
  const env = {
    [bindingEnvName(name)]: typeof value === "string" ? value : JSON.stringify(value),
    ...extraEnv,
  };
  return new BindingResolver().getPostgresConnection(name, { env });
}

async function expectError(promise: Promise<unknown>, code: PgBindErrorCode, ...patterns: RegExp[]) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof PgBindError, `expected PgBindError, got ${inspect(error)}`);
    assert.equal(error.code, code, error.message);
    for (const pattern of patterns) assert.match(error.message, pattern);
    for (const view of [error.message, JSON.stringify(error), inspect(error), String(error.stack)]) {
      assert.doesNotMatch(view, /s3cr3t-PW/, "secret leaked");
    }
    return true;
  });
}

const local = {
  service: "local",
  host: "127.0.0.1",
  port: 5432,
  database: "app",
  username: "postgres",
  password: SECRET,
};

describe("binding names and variables", () => {
  it("maps names to PGBIND_<NAME>_BINDING", () => {
    assert.equal(bindingEnvName("db"), "PGBIND_DB_BINDING");
    assert.equal(bindingEnvName("orders-db"), "PGBIND_ORDERS_DB_BINDING");
  });

  it("reads a binding with a dashed name", async () => {
    const conn = await resolve(local, "orders-db");
    assert.equal(conn.host, "127.0.0.1");
  });

  it("BINDING_NOT_FOUND names the variable it looked for and the bindings that exist", async () => {
    const env = { PGBIND_ORDERS_DB_BINDING: JSON.stringify(local), PGBIND_CACHE_BINDING: "{}" };
    const error = new BindingResolver().getPostgresConnection("db", { env });
    await expectError(error, "BINDING_NOT_FOUND", /PGBIND_DB_BINDING/, /"orders-db"/, /"cache"/);
    await assert.rejects(new BindingResolver().getPostgresConnection("db", { env }), { retryable: false });
  });

  it("BINDING_NOT_FOUND with no bindings says how to link one", async () => {
    await expectError(
      new BindingResolver().getPostgresConnection("db", { env: {} }),
      "BINDING_NOT_FOUND",
      /No Postgres bindings/,
    );
  });

  it("never falls back to PG* variables", async () => {
    const env = { PGHOST: "h", PGUSER: "u", PGPASSWORD: SECRET, PGDATABASE: "d" };
    await expectError(new BindingResolver().getPostgresConnection("db", { env }), "BINDING_NOT_FOUND");
    await expectError(
      resolve({ ...local, password: "" }, "db", env),
      "INVALID_BINDING_CONFIG",
      /password: is empty/,
    );
  });

  it("rejects invalid binding names", async () => {
    await expectError(
      new BindingResolver().getPostgresConnection("bad name!", { env: {} }),
      "INVALID_BINDING_CONFIG",
      /letters, digits/,
    );
  });
});

describe("INVALID_BINDING_CONFIG", () => {
  const cases: [string, unknown, RegExp[]][] = [
    ["malformed JSON", `{"service":"local","password":"${SECRET}"`, [/not valid JSON/]],
    ["empty value", "  ", [/is empty/]],
    ["a JSON array", "[]", [/expected a JSON object/]],
    [
      "unknown service",
      { ...local, service: "mysql" },
      [/service: "mysql" is not a known service/, /local, external/],
    ],
    ["missing service", { host: "h" }, [/service: .* not a known service/]],
    ["unknown key", { ...local, sslmode: "require" }, [/sslmode: unknown field for service "local"/]],
    ["missing field", { ...local, host: undefined }, [/host: missing/]],
    ["port out of range", { ...local, port: 70000 }, [/port: 70000 is out of range/, /1 to 65535/]],
    ["port zero", { ...local, port: 0 }, [/port: 0 is out of range/]],
    ["port not a number", { ...local, port: "abc" }, [/port: "abc" is not a number/]],
    ["port fractional", { ...local, port: 5432.5 }, [/port: got a number/]],
    ["empty host", { ...local, host: "" }, [/host: is empty/]],
    ["empty database", { ...local, database: " " }, [/database: is empty/]],
    [
      "dot database",
      { ...local, database: ".." },
      [/database: ".." cannot be expressed in a connection URL/],
    ],
    ["password not a string", { ...local, password: 42 }, [/password: got a number/]],
    [
      "bad sslmode",
      { ...local, service: "external", sslmode: "allow" },
      [/sslmode: "allow" is not supported/, /verify-full/],
    ],
    [
      "bad PEM",
      { ...local, service: "external", sslrootcert: "nope" },
      [/sslrootcert: is not a PEM certificate/],
    ],
    [
      "aurora with a password",
      {
        service: "aurora",
        host: "h",
        port: 5432,
        database: "d",
        username: "u",
        region: "us-east-1",
        passwordSecretArn: "x",
        password: SECRET,
      },
      [/password: unknown field/, /passwordSecretArn: "x" is not a Secrets Manager ARN/],
    ],
    [
      "aurora forced to disable",
      {
        service: "aurora",
        host: "h",
        port: 5432,
        database: "d",
        username: "u",
        region: "us-east-1",
        passwordSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
        sslmode: "disable",
      },
      [/sslmode: unknown field for service "aurora"/],
    ],
    [
      "aurora region mismatch",
      {
        service: "aurora",
        host: "h",
        port: 5432,
        database: "d",
        username: "u",
        region: "eu-west-1",
        passwordSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
      },
      [/region: "eu-west-1" does not match the secret ARN's region "us-east-1"/],
    ],
    [
      "cloud-sql bad secret name",
      {
        service: "cloud-sql",
        host: "h",
        port: 5432,
        database: "d",
        username: "u",
        passwordSecretName: "projects/p/secrets/s",
      },
      [/passwordSecretName: .* is not a secret version name/, /versions/],
    ],
    [
      "cloud-sql empty CA list",
      {
        service: "cloud-sql",
        host: "h",
        port: 5432,
        database: "d",
        username: "u",
        passwordSecretName: "projects/p/secrets/s/versions/latest",
        serverCaCertificates: [],
      },
      [/serverCaCertificates: got an array/],
    ],
    [
      "flexible-server non-vault URI",
      {
        service: "flexible-server",
        host: "h",
        port: 5432,
        database: "d",
        username: "u",
        passwordSecretUri: "https://example.com/secrets/x",
      },
      [/passwordSecretUri: "example.com" is not a Key Vault host/],
    ],
    [
      "flexible-server http URI",
      {
        service: "flexible-server",
        host: "h",
        port: 5432,
        database: "d",
        username: "u",
        passwordSecretUri: "http://v.vault.azure.net/secrets/x",
      },
      [/must use https/],
    ],
  ];
  for (const [label, value, patterns] of cases) {
    it(label, () =>
      expectError(
        resolve(value),
        "INVALID_BINDING_CONFIG",
        /binding "db" \(PGBIND_DB_BINDING\)/,
        ...patterns,
      ),
    );
  }

  it("reports every problem at once", async () => {
    await expectError(
      resolve({ service: "external", host: "", port: -1, extra: 1 }),
      "INVALID_BINDING_CONFIG",
      /extra: unknown field/,
      /host: is empty/,
      /port: -1 is out of range/,
      /database: missing/,
      /username: missing/,
      /password: missing/,
    );
  });

  it("accepts a port given as a decimal string", async () => {
    assert.equal((await resolve({ ...local, port: "6543" })).port, 6543);
  });

  it("accepts an already-parsed object from an edge runtime's env", async () => {
    const conn = await new BindingResolver().getPostgresConnection("db", {
      env: { PGBIND_DB_BINDING: local },
    });
    assert.equal(conn.database, "app");
  });
});

describe("service TLS policy", () => {
  const base = { host: "db.internal", port: 5432, database: "d", username: "u" };
  it("local is always disable", async () => {
    const conn = await resolve(local);
    assert.equal(conn.sslmode, "disable");
    assert.equal(conn.ssl, false);
  });
  it("gateway defaults to require", async () => {
    const conn = await resolve({ ...base, service: "gateway", password: SECRET });
    assert.equal(conn.sslmode, "require");
    assert.deepEqual(conn.ssl, { rejectUnauthorized: false });
  });
  it("external verify-full carries the CA and verifies", async () => {
    const conn = await resolve({
      ...base,
      service: "external",
      password: SECRET,
      sslmode: "verify-full",
      sslrootcert: CERT,
    });
    assert.deepEqual(conn.ssl, { rejectUnauthorized: true, ca: CERT });
  });
  it("external verify-ca verifies the chain but not the host name", async () => {
    const conn = await resolve({
      ...base,
      service: "external",
      password: SECRET,
      sslmode: "verify-ca",
      sslrootcert: CERT,
    });
    assert.ok(conn.ssl !== false);
    assert.equal(conn.ssl.rejectUnauthorized, true);
    assert.equal(conn.ssl.checkServerIdentity?.(), undefined);
  });
  it("external require with a root certificate behaves like verify-ca (libpq)", async () => {
    const conn = await resolve({
      ...base,
      service: "external",
      password: SECRET,
      sslmode: "require",
      sslrootcert: CERT,
    });
    assert.ok(
      conn.ssl !== false && conn.ssl.rejectUnauthorized && typeof conn.ssl.checkServerIdentity === "function",
    );
  });
});

describe("Kubernetes Service Binding directories", () => {
  let root: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    const dir = await makeTempDir("k8s");
    root = dir.path;
    cleanup = dir.remove;
  });
  after(() => cleanup());

  async function writeBinding(name: string, files: Record<string, string>) {
    const dir = path.join(root, name);
    await mkdir(dir, { recursive: true });
    for (const [file, content] of Object.entries(files)) await writeFile(path.join(dir, file), content);
  }

  it("reads echo-written files (one trailing newline removed) and keeps a password's trailing space", async () => {
    await writeBinding("db", {
      type: "postgresql\n",
      host: "db.svc.cluster.local\n",
      port: "5432\n",
      database: "orders\n",
      username: "app\n",
      password: "ends with space \n",
      provider: "crunchydata\n",
    });
    const conn = await new BindingResolver()
      .getPostgresConnection("db", {
        env: { SERVICE_BINDING_ROOT: root },
        preferProbeTimeoutMs: 1,
      })
      .catch((e: PgBindError) => e);
    // Nothing listens on db.svc.cluster.local; sslmode defaults to prefer, so the probe reports it.
    assert.ok(conn instanceof PgBindError && conn.code === "DATABASE_UNREACHABLE", String(conn));
    const disabled = await writeBinding("db2", {
      type: "postgresql",
      host: "127.0.0.1",
      port: "5432",
      database: "orders",
      username: "app",
      password: "ends with space \r\n",
      sslmode: "disable\n",
    }).then(() =>
      new BindingResolver().getPostgresConnection("db2", { env: { SERVICE_BINDING_ROOT: root } }),
    );
    assert.equal(disabled.password, "ends with space ");
    assert.equal(disabled.port, 5432);
    await writeBinding("db3", {
      type: "postgresql\n",
      host: "h\n",
      port: "1\n",
      database: "d\n",
      username: "u\n",
      password: "pw \n",
      sslmode: "require\n",
    });
    const echoed = await new BindingResolver().getPostgresConnection("db3", {
      env: { SERVICE_BINDING_ROOT: root },
    });
    assert.equal(echoed.password, "pw ");
    assert.equal(echoed.host, "h");
    assert.equal(echoed.sslmode, "require");
    assert.equal(disabled.sslmode, "disable");
  });

  it("prefers the environment variable over the directory", async () => {
    const conn = await resolve(local, "db2", { SERVICE_BINDING_ROOT: root });
    assert.equal(conn.database, "app");
  });

  it("rejects a directory whose type is not postgresql", async () => {
    await writeBinding("cache", { type: "redis\n", host: "h" });
    await expectError(
      new BindingResolver().getPostgresConnection("cache", { env: { SERVICE_BINDING_ROOT: root } }),
      "INVALID_BINDING_CONFIG",
      /type: "redis"; expected a file "type" containing "postgresql"/,
    );
  });

  it("validates the files like an external binding", async () => {
    await writeBinding("broken", {
      type: "postgresql",
      host: "h",
      port: "99999",
      database: "d",
      username: "u",
    });
    await expectError(
      new BindingResolver().getPostgresConnection("broken", { env: { SERVICE_BINDING_ROOT: root } }),
      "INVALID_BINDING_CONFIG",
      /broken\/\)/,
      /port: 99999 is out of range/,
      /password: missing/,
    );
  });

  it("lists directory bindings when a name is not found", async () => {
    await expectError(
      new BindingResolver().getPostgresConnection("nope", { env: { SERVICE_BINDING_ROOT: root } }),
      "BINDING_NOT_FOUND",
      /PGBIND_NOPE_BINDING or .*\/nope\//,
      /"db2"/,
    );
  });
});
