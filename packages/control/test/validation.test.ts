import assert from "node:assert/strict";
import { test } from "node:test";
import { ControlError, parseConnectionString, parseGatewayUrl } from "../src/index.ts";
import { applyOriginChanges, validateCreate, validatePatch, validateRotate } from "../src/validation.ts";

const SECRET = "s3cr3t-Value:with@chars";

function problemsOf(fn: () => unknown): { field: string; message: string }[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ControlError);
    assert.equal(error.code, "INVALID_REQUEST");
    assert.equal(error.status, 400);
    assert.ok(!error.message.includes(SECRET), "the message must not contain the secret");
    return [...(error.problems ?? [])];
  }
  assert.fail("expected INVALID_REQUEST");
}

const good = {
  name: "orders-db",
  origin: { host: "db.internal", port: 5432, database: "orders", user: "app", password: SECRET },
};

test("a valid create body gets defaults", () => {
  const settings = validateCreate(good);
  assert.equal(settings.origin.sslmode, "prefer");
  assert.equal(settings.poolMode, "transaction");
  assert.equal(settings.poolSize, 20);
  assert.equal(settings.timeouts.connectMs, 30_000);
  assert.equal(validateCreate({ ...good, origin: { ...good.origin, port: undefined } }).origin.port, 5432);
});

test("every problem is reported with its JSON path, unknown fields included, secrets never echoed", () => {
  const problems = problemsOf(() =>
    validateCreate({
      name: "-bad name",
      origin: {
        host: "",
        port: 70000,
        database: "",
        user: 5,
        password: `${SECRET}\0`,
        sslmode: "sometimes",
        extra: 1,
      },
      poolMode: "statement",
      poolSize: 0,
      timeouts: { connectMs: -1, nope: 1 },
      surprise: true,
    }),
  );
  const fields = problems.map((p) => p.field).sort();
  assert.deepEqual(fields, [
    "name",
    "origin.database",
    "origin.extra",
    "origin.host",
    "origin.password",
    "origin.port",
    "origin.sslmode",
    "origin.user",
    "poolMode",
    "poolSize",
    "surprise",
    "timeouts.connectMs",
    "timeouts.nope",
  ]);
  const port = problems.find((p) => p.field === "origin.port");
  assert.match(port?.message ?? "", /integer from 1 to 65535/);
  assert.match(problems.find((p) => p.field === "origin.sslmode")?.message ?? "", /disable, prefer, require/);
  assert.match(problems.find((p) => p.field === "surprise")?.message ?? "", /unknown field/);
  for (const p of problems) assert.ok(!p.message.includes(SECRET));
});

test("missing required fields and a non-object body", () => {
  assert.deepEqual(
    problemsOf(() => validateCreate({})).map((p) => p.field),
    ["name", "origin"],
  );
  assert.deepEqual(
    problemsOf(() => validateCreate({ name: "x", origin: {} }))
      .map((p) => p.field)
      .sort(),
    ["origin.database", "origin.host", "origin.password", "origin.user"],
  );
  assert.deepEqual(
    problemsOf(() => validateCreate([1])).map((p) => p.field),
    ["(root)"],
  );
  assert.deepEqual(
    problemsOf(() =>
      validateCreate({ name: "x", origin: { sslrootcert: "nope" }, connectionString: "postgres://a:b@h/d" }),
    ).map((p) => p.field),
    ["origin.sslrootcert"],
  );
  assert.deepEqual(
    problemsOf(() =>
      validateCreate({ name: "x", origin: { host: "h" }, connectionString: "postgres://a:b@h/d" }),
    ).map((p) => p.field),
    ["origin.host"],
  );
});

test("connectionString: libpq URI semantics", () => {
  const parsed = parseConnectionString(
    "postgresql://us%40er:p%40ss%2Fw%3Ard@[2001:db8::1]:6543/my%20db?sslmode=verify-full&application_name=x",
  );
  assert.deepEqual(parsed, {
    host: "2001:db8::1",
    port: 6543,
    database: "my db",
    user: "us@er",
    password: "p@ss/w:rd",
    sslmode: "verify-full",
  });
  assert.deepEqual(parseConnectionString("postgres://app:pw@db.internal"), {
    host: "db.internal",
    port: 5432,
    database: "app",
    user: "app",
    password: "pw",
    sslmode: "prefer",
  });
  const body = validateCreate({
    name: "x",
    connectionString: `postgres://app:${encodeURIComponent(SECRET)}@h:1/d`,
  });
  assert.equal(body.origin.password, SECRET);
});

test("connectionString problems never quote the password", () => {
  const cases: [string, RegExp][] = [
    [`mysql://u:${SECRET}@h/d`, /postgres:\/\//],
    [`postgres://u:${SECRET}@h1:5432,h2:5432/d`, /several hosts/],
    [`postgres://u:${SECRET}@h:99999/d`, /port/],
    [`postgres://u:${SECRET}@h/d?sslmode=allow`, /sslmode "allow"/],
    [`postgres://u:${SECRET}@h/d?options=-c%20x`, /parameter "options"/],
    [`postgres://u@h/d`, /no password/],
    [`postgres://:${SECRET}@h/d`, /no user/],
    [`postgres://u:${SECRET}@/d`, /no host/],
  ];
  for (const [text, expected] of cases) {
    const problems = problemsOf(() => validateCreate({ name: "x", connectionString: text }));
    assert.ok(problems.length >= 1);
    assert.ok(problems.every((p) => p.field === "connectionString"));
    assert.match(problems.map((p) => p.message).join("\n"), expected);
  }
});

test("patch: origin fields merge, connectionString replaces, sslrootcert null removes", () => {
  const current = { ...validateCreate(good).origin, sslrootcert: "PEM" };
  const merged = applyOriginChanges(current, validatePatch({ origin: { port: 6000 } }));
  assert.equal(merged.port, 6000);
  assert.equal(merged.host, "db.internal");
  assert.equal(merged.password, SECRET);
  assert.equal(merged.sslrootcert, "PEM");
  const removed = applyOriginChanges(current, validatePatch({ origin: { sslrootcert: null } }));
  assert.equal(removed.sslrootcert, undefined);
  const replaced = applyOriginChanges(
    current,
    validatePatch({ connectionString: "postgres://u2:p2@other/db2" }),
  );
  assert.equal(replaced.host, "other");
  assert.equal(replaced.user, "u2");
  assert.equal(replaced.sslrootcert, undefined);
  assert.deepEqual(validatePatch({}), {});
  assert.deepEqual(
    problemsOf(() => validatePatch({ origin: { port: "5432" }, poolSize: 1.5 }))
      .map((p) => p.field)
      .sort(),
    ["origin.port", "poolSize"],
  );
});

test("rotate body and gateway URL", () => {
  assert.equal(validateRotate({}), 3600);
  assert.equal(validateRotate({ graceSeconds: 0 }), 0);
  assert.deepEqual(
    problemsOf(() => validateRotate({ graceSeconds: -1, x: 1 }))
      .map((p) => p.field)
      .sort(),
    ["graceSeconds", "x"],
  );
  assert.deepEqual(parseGatewayUrl("postgres://gw.internal:6432?sslmode=require"), {
    host: "gw.internal",
    port: 6432,
    sslmode: "require",
    explicitSslmode: "require",
  });
  assert.equal(parseGatewayUrl("postgres://[::1]:6432").host, "::1");
  assert.throws(() => parseGatewayUrl("postgres://u:p@gw:6432"), { code: "INVALID_OPTIONS" });
  assert.throws(() => parseGatewayUrl("http://gw:6432"), { code: "INVALID_OPTIONS" });
});
