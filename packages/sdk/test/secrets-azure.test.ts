import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import util from "node:util";
import { createTestPki, type TestPki } from "../../../test-support/pki.ts";
import type { FlexibleServerBinding } from "../src/binding.ts";
import { PgBindError } from "../src/errors.ts";
import { fetchFlexibleServerSecret, parseKeyVaultSecretUri } from "../src/secrets/azure.ts";
import type { SecretStoreOptions } from "../src/secrets/types.ts";
import { type FakeKeyVault, startFakeKeyVault } from "./support/azure-key-vault-server.ts";

const VAULT = "https://myvault.vault.azure.net";
const SECRET = "s3cr3t-Pa55:w/o#rd-密码";
const ACCESS_TOKEN = "eyJ0eXAi.test-access-token";

function bindingFor(passwordSecretUri: string): FlexibleServerBinding {
  return {
    service: "flexible-server",
    host: "myserver.postgres.database.azure.com",
    port: 5432,
    database: "app",
    username: "app",
    passwordSecretUri,
  };
}
const binding = bindingFor(`${VAULT}/secrets/db-password`);

/** A TokenCredential that records what it was asked for and never contacts Entra ID. */
const tokenRequests: { scopes: string | string[]; tenantId: string | undefined }[] = [];
const credential = {
  async getToken(scopes: string | string[], options?: { tenantId?: string }) {
    tokenRequests.push({ scopes, tenantId: options?.tenantId });
    return { token: ACCESS_TOKEN, expiresOnTimestamp: Date.now() + 3_600_000 };
  },
};

let pki: TestPki;
let server: FakeKeyVault;
let options: SecretStoreOptions;

before(async () => {
  pki = await createTestPki();
  server = await startFakeKeyVault({ cert: pki.serverCert, key: pki.serverKey });
  // The test CA is trusted by this client only (core-rest-pipeline's `tlsOptions`), never process-wide.
  options = {
    azure: { endpoint: server.endpoint, credential, clientOptions: { tlsOptions: { ca: pki.caCert } } },
  };
});
after(() => server.close());

/** Asserts a resolution error that names the binding and secret URI and leaks no secret. */
async function assertSecretError(
  promise: Promise<unknown>,
  expected: { retryable: boolean; mentions: readonly string[]; secrets: readonly string[]; uri?: string },
): Promise<PgBindError> {
  const error = await promise.then(
    () => assert.fail("expected a PgBindError"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof PgBindError, `expected a PgBindError, got ${util.inspect(error)}`);
  assert.equal(error.code, "POSTGRES_SECRET_RESOLUTION_ERROR");
  assert.equal(error.retryable, expected.retryable, error.message);
  assert.equal(error.bindingName, "db");
  for (const text of [
    'binding "db"',
    "flexible-server",
    expected.uri ?? binding.passwordSecretUri,
    ...expected.mentions,
  ]) {
    assert.ok(error.message.includes(text), `message should mention ${text}: ${error.message}`);
  }
  const renderings = [error.message, JSON.stringify(error), util.inspect(error, { depth: Infinity })];
  for (const secret of [...expected.secrets, ACCESS_TOKEN]) {
    for (const rendering of renderings)
      assert.ok(!rendering.includes(secret), "a secret leaked into the error");
  }
  return error;
}

describe("parseKeyVaultSecretUri", () => {
  it("splits vault, name and optional version", () => {
    assert.deepEqual(parseKeyVaultSecretUri(`${VAULT}/secrets/db`), { vaultUrl: VAULT, name: "db" });
    assert.deepEqual(parseKeyVaultSecretUri(`${VAULT}/secrets/db/0123abcd`), {
      vaultUrl: VAULT,
      name: "db",
      version: "0123abcd",
    });
    assert.equal(parseKeyVaultSecretUri(`${VAULT}/keys/db`), undefined);
    assert.equal(parseKeyVaultSecretUri("http://myvault.vault.azure.net/secrets/db"), undefined);
    assert.equal(parseKeyVaultSecretUri(`${VAULT}/secrets/db/v/extra`), undefined);
  });
});

describe("fetchFlexibleServerSecret against a local Key Vault", () => {
  it("answers the auth challenge and returns the latest version", async () => {
    server.setSecret("db-password", SECRET);
    tokenRequests.length = 0;
    assert.deepEqual(await fetchFlexibleServerSecret("db", binding, options), { password: SECRET });
    assert.deepEqual(tokenRequests, [
      { scopes: ["https://vault.azure.net/.default"], tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47" },
    ]);
    assert.equal(server.tokens.at(-1), ACCESS_TOKEN);
  });

  it("returns a pinned version", async () => {
    const pinned = server.setSecret("db-password", "pinned-value");
    server.setSecret("db-password", "newer-value");
    const versioned = bindingFor(`${VAULT}/secrets/db-password/${pinned}`);
    assert.equal((await fetchFlexibleServerSecret("db", versioned, options)).password, "pinned-value");
  });

  it("returns the new value after a rotation", async () => {
    server.setSecret("db-password", "before-rotation");
    assert.equal((await fetchFlexibleServerSecret("db", binding, options)).password, "before-rotation");
    server.setSecret("db-password", "after-rotation");
    assert.equal((await fetchFlexibleServerSecret("db", binding, options)).password, "after-rotation");
  });

  it("reports throttling as retryable, without sleeping through Retry-After", async () => {
    server.setSecret("db-password", SECRET);
    server.failNext(1, "Throttled");
    const started = Date.now();
    await assertSecretError(fetchFlexibleServerSecret("db", binding, options), {
      retryable: true,
      mentions: ["Throttled", "HTTP 429"],
      secrets: [SECRET],
    });
    assert.ok(Date.now() - started < 5_000, "the SDK must not wait for Retry-After");
    assert.equal((await fetchFlexibleServerSecret("db", binding, options)).password, SECRET);
  });

  it("reports a server error as retryable", async () => {
    server.setSecret("db-password", SECRET);
    server.failNext(1, "ServiceUnavailable");
    await assertSecretError(fetchFlexibleServerSecret("db", binding, options), {
      retryable: true,
      mentions: ["HTTP 503"],
      secrets: [SECRET],
    });
  });

  it("reports a missing secret as not retryable", async () => {
    const missing = bindingFor(`${VAULT}/secrets/no-such-secret`);
    await assertSecretError(fetchFlexibleServerSecret("db", missing, options), {
      retryable: false,
      mentions: ["SecretNotFound", "HTTP 404"],
      secrets: [],
      uri: missing.passwordSecretUri,
    });
  });

  it("reports denied access and a disabled secret as not retryable", async () => {
    server.setSecret("db-password", SECRET);
    server.failNext(1, "Forbidden");
    await assertSecretError(fetchFlexibleServerSecret("db", binding, options), {
      retryable: false,
      mentions: ["Forbidden", "HTTP 403"],
      secrets: [SECRET],
    });
    server.setEnabled("db-password", false);
    await assertSecretError(fetchFlexibleServerSecret("db", binding, options), {
      retryable: false,
      mentions: ["disabled secret"],
      secrets: [SECRET],
    });
    server.setEnabled("db-password", true);
  });

  it("reports an empty value as retryable", async () => {
    server.setSecret("db-password", "");
    await assertSecretError(fetchFlexibleServerSecret("db", binding, options), {
      retryable: true,
      mentions: ["empty"],
      secrets: [],
    });
  });

  it("does not quote an unparseable response, which may hold the secret", async () => {
    server.respondRawOnce(`{"value":"${SECRET}","id":`);
    await assertSecretError(fetchFlexibleServerSecret("db", binding, options), {
      retryable: true,
      mentions: ["could not be read"],
      secrets: [SECRET],
    });
  });

  it("does not trust the test CA unless the client options say so", async () => {
    server.setSecret("db-password", SECRET);
    const untrusted = { azure: { endpoint: server.endpoint, credential } };
    await assertSecretError(fetchFlexibleServerSecret("db", binding, untrusted), {
      retryable: false,
      mentions: ["certificate"],
      secrets: [SECRET],
    });
  });

  it("reports an unreachable endpoint as retryable", async () => {
    const closed = await startFakeKeyVault({ cert: pki.serverCert, key: pki.serverKey });
    await closed.close();
    await assertSecretError(
      fetchFlexibleServerSecret("db", binding, { azure: { ...options.azure, endpoint: closed.endpoint } }),
      { retryable: true, mentions: ["ECONNREFUSED"], secrets: [] },
    );
  });
});
