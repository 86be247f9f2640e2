import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import util from "node:util";
import type { AuroraBinding } from "../src/binding.ts";
import { PgBindError } from "../src/errors.ts";
import { fetchAuroraSecret } from "../src/secrets/aws.ts";
import { loadOptionalModule } from "../src/secrets/load.ts";
import type { SecretStoreOptions } from "../src/secrets/types.ts";
import { type FakeSecretsManager, startFakeSecretsManager } from "./support/aws-secrets-server.ts";

const ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf";
const SECRET = "s3cr3t-Pa55:w/o#rd";
const binding: AuroraBinding = {
  service: "aurora",
  host: "db.cluster-abc.eu-west-1.rds.amazonaws.com",
  port: 5432,
  database: "app",
  username: "app",
  region: "eu-west-1",
  passwordSecretArn: ARN,
};

let server: FakeSecretsManager;
let options: SecretStoreOptions;

before(async () => {
  server = await startFakeSecretsManager();
  // Explicit credentials keep the SDK away from IMDS and ~/.aws.
  options = {
    aws: {
      endpoint: server.endpoint,
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "test-key" },
    },
  };
});
after(() => server.close());

/** Asserts a retryable-or-not resolution error that names the binding and ARN and leaks no secret. */
async function assertSecretError(
  promise: Promise<unknown>,
  expected: { retryable: boolean; mentions: readonly string[]; secrets: readonly string[] },
): Promise<PgBindError> {
  const error = await promise.then(
    () => assert.fail("expected a PgBindError"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof PgBindError, `expected a PgBindError, got ${util.inspect(error)}`);
  assert.equal(error.code, "POSTGRES_SECRET_RESOLUTION_ERROR");
  assert.equal(error.retryable, expected.retryable, error.message);
  assert.equal(error.bindingName, "db");
  for (const text of ['binding "db"', "aurora", ARN, ...expected.mentions]) {
    assert.ok(error.message.includes(text), `message should mention ${text}: ${error.message}`);
  }
  const renderings = [
    error.message,
    JSON.stringify(error),
    util.inspect(error, { depth: Infinity, showHidden: true }),
  ];
  for (const secret of expected.secrets) {
    for (const rendering of renderings)
      assert.ok(!rendering.includes(secret), "the secret leaked into the error");
  }
  return error;
}

describe("fetchAuroraSecret against a local Secrets Manager", () => {
  it("returns a bare password", async () => {
    server.setSecret(ARN, SECRET);
    assert.deepEqual(await fetchAuroraSecret("db", binding, options), { password: SECRET });
  });

  it("returns the user name and password of an RDS JSON secret", async () => {
    const json = { engine: "postgres", username: "app_rw", password: SECRET, host: "h", port: 5432 };
    server.setSecret(ARN, JSON.stringify(json));
    assert.deepEqual(await fetchAuroraSecret("db", binding, options), {
      username: "app_rw",
      password: SECRET,
    });
  });

  it("treats a string that only looks like JSON as the password", async () => {
    server.setSecret(ARN, "{not-json");
    assert.deepEqual(await fetchAuroraSecret("db", binding, options), { password: "{not-json" });
  });

  it("rejects a JSON secret without a password, naming its keys but no values", async () => {
    server.setSecret(ARN, JSON.stringify({ username: "app_rw", pass: SECRET }));
    const error = await assertSecretError(fetchAuroraSecret("db", binding, options), {
      retryable: false,
      mentions: ['"username"', '"pass"'],
      secrets: [SECRET, "app_rw"],
    });
    assert.match(error.message, /without a non-empty string "password"/);
  });

  it("rejects a binary secret", async () => {
    server.setSecret(ARN, { binary: new TextEncoder().encode(SECRET) });
    await assertSecretError(fetchAuroraSecret("db", binding, options), {
      retryable: false,
      mentions: ["SecretBinary"],
      secrets: [SECRET],
    });
  });

  it("returns the new value after a rotation", async () => {
    server.setSecret(ARN, "before-rotation");
    assert.equal((await fetchAuroraSecret("db", binding, options)).password, "before-rotation");
    server.setSecret(ARN, "after-rotation");
    assert.equal((await fetchAuroraSecret("db", binding, options)).password, "after-rotation");
  });

  it("reports throttling as retryable, after a single attempt", async () => {
    server.setSecret(ARN, SECRET);
    server.failNext(1, "ThrottlingException");
    const before = server.requests;
    await assertSecretError(fetchAuroraSecret("db", binding, options), {
      retryable: true,
      mentions: ["ThrottlingException", "Rate exceeded"],
      secrets: [SECRET, "test-key"],
    });
    assert.equal(server.requests - before, 1, "the SDK must not retry on its own");
    assert.equal((await fetchAuroraSecret("db", binding, options)).password, SECRET);
  });

  it("reports a server error as retryable", async () => {
    server.setSecret(ARN, SECRET);
    server.failNext(1, "InternalServiceError");
    await assertSecretError(fetchAuroraSecret("db", binding, options), {
      retryable: true,
      mentions: ["InternalServiceError", "HTTP 500"],
      secrets: [SECRET],
    });
  });

  it("reports a missing secret as not retryable", async () => {
    server.setSecret(ARN, undefined);
    await assertSecretError(fetchAuroraSecret("db", binding, options), {
      retryable: false,
      mentions: ["ResourceNotFoundException"],
      secrets: [],
    });
  });

  for (const type of ["AccessDeniedException", "InvalidRequestException"] as const) {
    it(`reports ${type} as not retryable`, async () => {
      server.setSecret(ARN, SECRET);
      server.failNext(1, type);
      await assertSecretError(fetchAuroraSecret("db", binding, options), {
        retryable: false,
        mentions: [type],
        secrets: [SECRET],
      });
    });
  }

  it("reports an empty secret string as retryable (rotation in progress)", async () => {
    server.setSecret(ARN, "");
    await assertSecretError(fetchAuroraSecret("db", binding, options), {
      retryable: true,
      mentions: ["empty"],
      secrets: [],
    });
  });

  it("does not quote an unparseable response, which may hold the secret", async () => {
    server.respondRawOnce(`{"ARN":"${ARN}","SecretString":"${SECRET}`);
    await assertSecretError(fetchAuroraSecret("db", binding, options), {
      retryable: true,
      mentions: ["could not be read"],
      secrets: [SECRET],
    });
  });

  it("reports an unreachable endpoint as retryable", async () => {
    const closed = await startFakeSecretsManager();
    await closed.close();
    await assertSecretError(
      fetchAuroraSecret("db", binding, { aws: { ...options.aws, endpoint: closed.endpoint } }),
      { retryable: true, mentions: ["ECONNREFUSED"], secrets: [] },
    );
  });
});

describe("loadOptionalModule", () => {
  it("names the package to install when it is missing", async () => {
    const error = await loadOptionalModule("@pgbind/definitely-not-installed", {
      bindingName: "db",
      service: "aurora",
      install: "the AWS Secrets Manager SDK",
    }).then(
      () => assert.fail("expected an error"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof PgBindError);
    assert.equal(error.code, "POSTGRES_SECRET_RESOLUTION_ERROR");
    assert.equal(error.retryable, false);
    assert.equal(
      error.message,
      'binding "db" (service aurora) needs the AWS Secrets Manager SDK: npm install @pgbind/definitely-not-installed',
    );
  });

  it("returns the same module namespace on every call", async () => {
    const context = { bindingName: "db", service: "aurora", install: "the AWS Secrets Manager SDK" } as const;
    const first = await loadOptionalModule<{ SecretsManagerClient: unknown }>(
      "@aws-sdk/client-secrets-manager",
      context,
    );
    const second = await loadOptionalModule<{ SecretsManagerClient: unknown }>(
      "@aws-sdk/client-secrets-manager",
      context,
    );
    assert.equal(typeof first.SecretsManagerClient, "function");
    assert.equal(first, second);
  });
});
