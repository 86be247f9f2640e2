import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inspect } from "node:util";
import fc from "fast-check";
import { parse as parsePgUrl } from "pg-connection-string";
import postgres from "postgres";
import {
  BINDING_SERVICES,
  BindingResolver,
  encodeComponent,
  PgBindError,
  PostgresConnection,
  pgConfig,
  postgresOptions,
} from "../src/index.ts";

const quiet = { onnotice: () => {} };

function connection(fields: Partial<ConstructorParameters<typeof PostgresConnection>[0]> = {}) {
  return new PostgresConnection({
    host: "db.example.com",
    port: 5432,
    database: "app",
    username: "app",
    password: "hunter2-is-the-password",
    sslmode: "require",
    ssl: { rejectUnauthorized: false },
    ...fields,
  });
}

/** Parses a URL the way postgres.js does, without connecting. */
function parseWithPostgresJs(url: string) {
  const sql = postgres(url, quiet);
  const { user, pass, database, host, port } = sql.options as unknown as {
    user: string;
    pass: string;
    database: string;
    host: string[];
    port: number[];
  };
  return { user, pass, database, host: host[0], port: port[0] };
}

describe("connectionString", () => {
  it("percent-encodes everything but unreserved characters", () => {
    assert.equal(encodeComponent("AZaz09-._~"), "AZaz09-._~");
    assert.equal(encodeComponent("!'()*@:/ "), "%21%27%28%29%2A%40%3A%2F%20");
    const conn = connection({ username: "we@ird:user", password: "p@ss:w/o#r%d", database: "my db" });
    assert.equal(
      conn.connectionString,
      "postgres://we%40ird%3Auser:p%40ss%3Aw%2Fo%23r%25d@db.example.com:5432/my%20db?sslmode=require",
    );
  });

  it("brackets IPv6 hosts", () => {
    assert.match(connection({ host: "::1" }).connectionString, /@\[::1\]:5432\//);
    assert.equal(parsePgUrl(connection({ host: "2001:db8::5" }).connectionString).host, "2001:db8::5");
  });

  it("round-trips any password and user name through pg-connection-string and postgres.js", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }),
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }),
        (password, username) => {
          const conn = connection({ password, username });
          const viaPg = parsePgUrl(conn.connectionString);
          assert.equal(viaPg.password, password);
          assert.equal(viaPg.user, username);
          assert.equal(viaPg.host, "db.example.com");
          assert.equal(viaPg.database, "app");
          const viaJs = parseWithPostgresJs(conn.connectionString);
          assert.equal(viaJs.pass, password);
          assert.equal(viaJs.user, username);
          assert.equal(viaJs.database, "app");
          assert.equal(viaJs.port, 5432);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("round-trips database names through pg-connection-string (which decodes the path with decodeURI)", () => {
    const reserved = new Set(";/?:@&=+$,#");
    fc.assert(
      fc.property(
        fc
          .string({ unit: "grapheme", minLength: 1, maxLength: 30 })
          .filter((s) => ![...s].some((c) => reserved.has(c)) && s !== "." && s !== ".."),
        (database) => {
          assert.equal(parsePgUrl(connection({ database }).connectionString).database, database);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("secrets stay out of logs", () => {
  const conn = connection({ password: "p@ss:w/o#r%d-SECRET" });
  const views = () => [
    inspect(conn),
    inspect(conn, { showHidden: true, depth: 5 }),
    JSON.stringify(conn),
    String(conn),
    `${conn}`,
    JSON.stringify({ ...conn }),
    Object.keys(conn).join(","),
    inspect(pgConfig(conn)),
    JSON.stringify(pgConfig(conn)),
    inspect(postgresOptions(conn)),
    JSON.stringify(postgresOptions(conn)),
  ];

  it("inspect, JSON, String and spreading never show the password", () => {
    for (const view of views()) {
      assert.doesNotMatch(view, /SECRET/);
      assert.doesNotMatch(view, /p%40ss/);
    }
    assert.match(
      inspect(conn),
      /postgres:\/\/app:\*\*\*\*\*\*\*\*@db\.example\.com:5432\/app\?sslmode=require/,
    );
  });

  it("the fields stay readable", () => {
    assert.equal(conn.password, "p@ss:w/o#r%d-SECRET");
    assert.match(conn.connectionString, /p%40ss%3Aw%2Fo%23r%25d-SECRET/);
    assert.equal(pgConfig(conn).password, conn.password);
    assert.equal(postgresOptions(conn).password, conn.password);
  });

  it("pgConfig gives fields, never a URL, and a connect timeout of at least 30 s", () => {
    const config = pgConfig(conn);
    assert.equal("connectionString" in config, false);
    assert.ok(config.connectionTimeoutMillis >= 30_000);
    assert.deepEqual(config.ssl, { rejectUnauthorized: false });
    assert.equal(config.user, "app");
    assert.ok(postgresOptions(conn).connect_timeout >= 30);
  });
});

describe("property: random bindings", () => {
  const secretMarker = "ZZSECRETZZ";
  const anyValue = fc.oneof(
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(""),
    fc.array(fc.string(), { maxLength: 2 }),
    fc.constantFrom("disable", "prefer", "require", "verify-ca", "verify-full", "5432", "65536"),
  );
  const secretValue = fc.string({ maxLength: 12 }).map((s) => `${secretMarker}${s}`);
  const bindingArb = fc.record(
    {
      service: fc.oneof(fc.constantFrom(...BINDING_SERVICES), fc.string()),
      host: anyValue,
      port: fc.oneof(fc.integer({ min: -10, max: 70_000 }), anyValue),
      database: anyValue,
      username: anyValue,
      password: fc.oneof(secretValue, anyValue),
      sslmode: anyValue,
      sslrootcert: anyValue,
      region: anyValue,
      passwordSecretArn: anyValue,
      passwordSecretName: anyValue,
      passwordSecretUri: anyValue,
      serverCaCertificates: anyValue,
    },
    { requiredKeys: [] },
  );
  const withExtraKeys = fc
    .tuple(bindingArb, fc.dictionary(fc.string({ maxLength: 8 }), anyValue, { maxKeys: 2 }))
    .map(([binding, extra]) => ({ ...extra, ...binding }));
  // Valid bindings of the services that need no network, with hostile passwords: must resolve.
  const validArb = fc
    .record({
      service: fc.constantFrom("local", "external", "gateway"),
      host: fc.constantFrom("127.0.0.1", "db.example.com", "::1"),
      port: fc.integer({ min: 1, max: 65535 }),
      database: fc.string({ unit: "grapheme", minLength: 1, maxLength: 10 }).filter((s) => s.trim() !== ""),
      username: fc.string({ unit: "grapheme", minLength: 1, maxLength: 10 }).filter((s) => s.trim() !== ""),
      password: secretValue,
      sslmode: fc.constantFrom("disable", "require", "verify-full"),
    })
    .map((b) => (b.service === "local" ? { ...b, sslmode: undefined } : b));
  const rawArb = fc.oneof(
    { weight: 3, arbitrary: withExtraKeys.map((b) => JSON.stringify(b)) },
    { weight: 2, arbitrary: validArb.map((b) => JSON.stringify(b)) },
    { weight: 1, arbitrary: secretValue.map((s) => `{"service":"local","password":"${s}"`) },
    { weight: 1, arbitrary: fc.string() },
  );

  it("never crash, fail only with a coded PgBindError, and never show a password", async () => {
    let resolved = 0;
    const resolver = new BindingResolver({ preferProbeTimeoutMs: 1, retry: { attempts: 1 } });
    await fc.assert(
      fc.asyncProperty(rawArb, async (raw) => {
        try {
          const conn = await resolver.getPostgresConnection("db", { env: { PGBIND_DB_BINDING: raw } });
          assert.ok(conn instanceof PostgresConnection);
          resolved++;
          for (const view of [inspect(conn), JSON.stringify(conn), String(conn)]) {
            assert.ok(!view.includes(secretMarker), "connection view shows the password");
          }
        } catch (error) {
          assert.ok(error instanceof PgBindError, `not a PgBindError: ${inspect(error)}`);
          assert.ok(
            ["INVALID_BINDING_CONFIG", "DATABASE_UNREACHABLE", "POSTGRES_SECRET_RESOLUTION_ERROR"].includes(
              error.code,
            ),
            error.code,
          );
          for (const view of [error.message, JSON.stringify(error), inspect(error)]) {
            assert.ok(!view.includes(secretMarker), `error shows the password: ${view}`);
          }
        }
      }),
      { numRuns: 400 },
    );
    assert.ok(resolved > 50, `only ${resolved} of 400 random bindings resolved: the generator is too narrow`);
  });
});
