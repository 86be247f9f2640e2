import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import util from "node:util";
import { OAuth2Client } from "google-auth-library";
import { grpc } from "google-gax";
import type { CloudSqlBinding } from "../src/binding.ts";
import { PgBindError } from "../src/errors.ts";
import { crc32c, fetchCloudSqlSecret } from "../src/secrets/gcp.ts";
import type { SecretStoreOptions } from "../src/secrets/types.ts";
import { type FakeSecretManager, startFakeSecretManager } from "./support/gcp-secret-manager-server.ts";

const NAME = "projects/my-project/secrets/db-password/versions/latest";
const SECRET = "s3cr3t-Pa55:w/o#rd-密码";
const ACCESS_TOKEN = "ya29.test-access-token";
const binding: CloudSqlBinding = {
  service: "cloud-sql",
  host: "10.0.0.5",
  port: 5432,
  database: "app",
  username: "app",
  passwordSecretName: NAME,
};

let server: FakeSecretManager;

/** An OAuth2 client holding a still-valid access token never contacts Google to refresh it. */
function presetAuthClient(): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: ACCESS_TOKEN, expiry_date: Date.now() + 3_600_000 });
  return client;
}

before(async () => {
  server = await startFakeSecretManager();
});
after(() => server.close());

const TRANSPORTS = {
  /** The REST transport: the only one google-gax runs over plain http. */
  rest: (): SecretStoreOptions => ({
    gcp: {
      apiEndpoint: server.apiEndpoint,
      port: server.port,
      protocol: "http",
      authClient: presetAuthClient(),
    },
  }),
  /** The default gRPC transport, over a plaintext channel. */
  grpc: (): SecretStoreOptions => ({
    gcp: {
      apiEndpoint: server.apiEndpoint,
      port: server.grpcPort,
      authClient: presetAuthClient(),
      clientOptions: { sslCreds: grpc.credentials.createInsecure() },
    },
  }),
};

/** Asserts a resolution error that names the binding and secret version and leaks no secret. */
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
  for (const text of ['binding "db"', "cloud-sql", NAME, ...expected.mentions]) {
    assert.ok(error.message.includes(text), `message should mention ${text}: ${error.message}`);
  }
  const renderings = [error.message, JSON.stringify(error), util.inspect(error, { depth: Infinity })];
  for (const secret of [...expected.secrets, ACCESS_TOKEN]) {
    for (const rendering of renderings)
      assert.ok(!rendering.includes(secret), "a secret leaked into the error");
  }
  return error;
}

describe("crc32c", () => {
  it("matches the CRC-32C check value and RFC 3720 vectors", () => {
    assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(new Uint8Array()), 0);
  });
});

for (const [transport, makeOptions] of Object.entries(TRANSPORTS)) {
  describe(`fetchCloudSqlSecret against a local Secret Manager (${transport} transport)`, () => {
    let options: SecretStoreOptions;
    before(() => {
      options = makeOptions();
    });

    it("returns the password, authenticated with the auth client's token", async () => {
      server.setSecret(NAME, SECRET);
      assert.deepEqual(await fetchCloudSqlSecret("db", binding, options), { password: SECRET });
      // gRPC sends no call credentials over a plaintext channel; REST sends the bearer token.
      if (transport === "rest") assert.equal(server.lastAuthorization, `Bearer ${ACCESS_TOKEN}`);
    });

    it("accepts a payload without a checksum", async () => {
      server.setSecret(NAME, { value: SECRET, crc32c: "omit" });
      assert.deepEqual(await fetchCloudSqlSecret("db", binding, options), { password: SECRET });
    });

    it("reports a checksum mismatch as retryable", async () => {
      server.setSecret(NAME, { value: SECRET, crc32c: "wrong" });
      await assertSecretError(fetchCloudSqlSecret("db", binding, options), {
        retryable: true,
        mentions: ["CRC32C"],
        secrets: [SECRET],
      });
    });

    it("returns the new value after a rotation", async () => {
      server.setSecret(NAME, "before-rotation");
      assert.equal((await fetchCloudSqlSecret("db", binding, options)).password, "before-rotation");
      server.setSecret(NAME, "after-rotation");
      assert.equal((await fetchCloudSqlSecret("db", binding, options)).password, "after-rotation");
    });

    it("reports throttling as retryable, after a single attempt", async () => {
      server.setSecret(NAME, SECRET);
      server.failNext(1, "RESOURCE_EXHAUSTED");
      const before = server.requests;
      await assertSecretError(fetchCloudSqlSecret("db", binding, options), {
        retryable: true,
        mentions: ["RESOURCE_EXHAUSTED"],
        secrets: [SECRET],
      });
      assert.equal(server.requests - before, 1, "the client must not retry on its own");
      assert.equal((await fetchCloudSqlSecret("db", binding, options)).password, SECRET);
    });

    for (const status of ["UNAVAILABLE", "INTERNAL"] as const) {
      it(`reports ${status} as retryable`, async () => {
        server.setSecret(NAME, SECRET);
        server.failNext(1, status);
        await assertSecretError(fetchCloudSqlSecret("db", binding, options), {
          retryable: true,
          mentions: [status],
          secrets: [SECRET],
        });
      });
    }

    it("reports a missing secret as not retryable", async () => {
      server.setSecret(NAME, undefined);
      await assertSecretError(fetchCloudSqlSecret("db", binding, options), {
        retryable: false,
        mentions: ["NOT_FOUND"],
        secrets: [],
      });
    });

    it("reports a denied permission as not retryable", async () => {
      server.setSecret(NAME, SECRET);
      server.failNext(1, "PERMISSION_DENIED");
      await assertSecretError(fetchCloudSqlSecret("db", binding, options), {
        retryable: false,
        mentions: ["PERMISSION_DENIED"],
        secrets: [SECRET],
      });
    });

    it("reports a disabled version as not retryable", async () => {
      server.setSecret(NAME, { value: SECRET, disabled: true });
      await assertSecretError(fetchCloudSqlSecret("db", binding, options), {
        retryable: false,
        mentions: ["FAILED_PRECONDITION", "DISABLED"],
        secrets: [SECRET],
      });
    });

    it("reports an empty payload as retryable", async () => {
      server.setSecret(NAME, "");
      await assertSecretError(fetchCloudSqlSecret("db", binding, options), {
        retryable: true,
        mentions: ["empty"],
        secrets: [],
      });
    });

    if (transport === "rest") {
      it("does not quote an unparseable response, which may hold the secret", async () => {
        server.respondRawOnce(`{"name":"${NAME}","payload":{"data":"x","note":"${SECRET}`);
        await assertSecretError(fetchCloudSqlSecret("db", binding, options), {
          retryable: true,
          mentions: ["could not be read"],
          secrets: [SECRET],
        });
      });
    }

    it("reports an unreachable endpoint as retryable", async () => {
      const closed = await startFakeSecretManager();
      await closed.close();
      await assertSecretError(
        fetchCloudSqlSecret("db", binding, {
          gcp: { ...options.gcp, port: transport === "rest" ? closed.port : closed.grpcPort },
        }),
        {
          retryable: true,
          mentions: [transport === "rest" ? "ECONNREFUSED" : "UNAVAILABLE"],
          secrets: [],
        },
      );
    });
  });
}
