import assert from "node:assert/strict";
import { rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { makeTempDir } from "../../../test-support/tmp.ts";
import {
  DEFAULT_TIMEOUTS,
  FileConfigSource,
  type GatewayConfig,
  GatewayConfigError,
  parseGatewayConfig,
} from "../src/index.ts";

const VERIFIER =
  "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
const ORIGIN_PW = "origin-SECRET-pw";

const minimal = {
  bindings: [
    {
      id: "orders",
      database: "orders",
      credentials: [{ user: "app", scramVerifier: VERIFIER }],
      origin: { host: "db.internal", database: "orders_prod", user: "owner", password: ORIGIN_PW },
    },
  ],
};

function problemsOf(value: unknown, env: Record<string, string> = {}): string[] {
  try {
    parseGatewayConfig(value, "gateway.json", env);
  } catch (error) {
    assert.ok(error instanceof GatewayConfigError);
    assert.doesNotMatch(error.message, /SECRET/);
    return [...error.problems];
  }
  assert.fail("expected a GatewayConfigError");
}

describe("gateway config", () => {
  it("fills in defaults: transaction pooling, pool size 20, origin port 5432 and sslmode prefer", () => {
    const config = parseGatewayConfig(minimal, "gateway.json");
    const [binding] = config.bindings;
    assert.equal(binding?.poolMode, "transaction");
    assert.equal(binding?.poolSize, 20);
    assert.equal(binding?.origin.port, 5432);
    assert.equal(binding?.origin.sslmode, "prefer");
    assert.deepEqual(binding?.timeouts, DEFAULT_TIMEOUTS);
  });

  it("reads the origin password from the environment with passwordEnv", () => {
    const withEnv = structuredClone(minimal) as { bindings: { origin: Record<string, unknown> }[] };
    const origin = withEnv.bindings[0]?.origin as Record<string, unknown>;
    delete origin.password;
    origin.passwordEnv = "ORDERS_PW";
    assert.equal(
      parseGatewayConfig(withEnv, "g", { ORDERS_PW: ORIGIN_PW }).bindings[0]?.origin.password,
      ORIGIN_PW,
    );
    assert.match(
      problemsOf(withEnv).join("\n"),
      /origin\.passwordEnv: the environment variable ORDERS_PW is not set/,
    );
  });

  it("reports every problem with its path, without echoing secrets", () => {
    const problems = problemsOf({
      extra: 1,
      bindings: [
        {
          id: "a",
          database: "db",
          credentials: [{ user: "app", scramVerifier: "SECRET-plaintext" }],
          origin: { host: "", port: 70000, database: "d", user: "u", password: ORIGIN_PW, sslmode: "allow" },
          poolMode: "statement",
          poolSize: 0,
          timeouts: { queryWaitMs: -1, bogus: 1 },
        },
        { id: "a", database: "db2", credentials: [], origin: {} },
      ],
    });
    const text = problems.join("\n");
    for (const expected of [
      /^extra: unknown key/m,
      /bindings\[0\]\.credentials\[0\]\.scramVerifier: must be a SCRAM-SHA-256 verifier .* never a password/,
      /bindings\[0\]\.origin\.host: must be a non-empty string/,
      /bindings\[0\]\.origin\.port: 70000 is not valid; expected an integer from 1 to 65535/,
      /bindings\[0\]\.origin\.sslmode: "allow" is not valid; use one of disable, prefer, require, verify-ca, verify-full/,
      /bindings\[0\]\.poolMode: "statement" is not valid; use one of transaction, session/,
      /bindings\[0\]\.poolSize: 0 is not valid/,
      /bindings\[0\]\.timeouts\.queryWaitMs: -1 is not valid/,
      /bindings\[0\]\.timeouts\.bogus: unknown key/,
      /bindings\[1\]\.credentials: must be a non-empty array/,
      /bindings\[1\]\.origin\.password: must be a non-empty string/,
    ]) {
      assert.match(text, expected);
    }
  });

  it("reads the gateway-wide loginTimeoutMs, and refuses one that is not a positive whole number of ms", () => {
    assert.equal(parseGatewayConfig(minimal, "g").loginTimeoutMs, undefined, "unset: the gateway's default");
    assert.equal(parseGatewayConfig({ ...minimal, loginTimeoutMs: 5_000 }, "g").loginTimeoutMs, 5_000);
    for (const bad of [0, -1, 1.5, "60s", null, 604_800_001]) {
      assert.deepEqual(problemsOf({ ...minimal, loginTimeoutMs: bad }), [
        `loginTimeoutMs: ${JSON.stringify(bad)} is not valid; expected an integer from 1 to 604800000`,
      ]);
    }
  });

  it("rejects two bindings with the same id or client database", () => {
    const twice = { bindings: [minimal.bindings[0], minimal.bindings[0]] };
    const text = problemsOf(twice).join("\n");
    assert.match(text, /bindings\[1\]\.id: "orders" is also used by bindings\[0\]/);
    assert.match(text, /bindings\[1\]\.database: "orders" is also used by bindings\[0\]/);
  });
});

describe("FileConfigSource", () => {
  let dir: { path: string; remove: () => Promise<void> };
  before(async () => {
    dir = await makeTempDir("gw-config");
  });
  after(() => dir.remove());

  it("loads a file, and explains a missing one and invalid JSON without quoting it", async () => {
    const file = path.join(dir.path, "gateway.json");
    await writeFile(file, JSON.stringify(minimal));
    assert.equal((await new FileConfigSource(file).load()).bindings[0]?.id, "orders");
    await assert.rejects(
      new FileConfigSource(path.join(dir.path, "nope.json")).load(),
      /file not found; pass --config/,
    );
    await writeFile(file, `{"bindings": [{"origin": {"password": "${ORIGIN_PW}"`);
    await assert.rejects(new FileConfigSource(file).load(), (error: Error) => {
      assert.match(error.message, /not valid JSON/);
      assert.doesNotMatch(error.message, /SECRET/);
      return true;
    });
  });

  it("reports a replaced file (write + rename, as editors do) to its watcher", async () => {
    const file = path.join(dir.path, "watched.json");
    await writeFile(file, JSON.stringify(minimal));
    const source = new FileConfigSource(file);
    const changed = new Promise<GatewayConfig>((resolve, reject) => {
      const stop = source.watch((result) => {
        stop();
        if ("config" in result) resolve(result.config);
        else reject(result.error);
      });
    });
    const next = structuredClone(minimal) as { bindings: { poolSize?: number }[] };
    (next.bindings[0] as { poolSize?: number }).poolSize = 5;
    await writeFile(`${file}.tmp`, JSON.stringify(next));
    await rename(`${file}.tmp`, file);
    assert.equal((await changed).bindings[0]?.poolSize, 5);
  });
});
