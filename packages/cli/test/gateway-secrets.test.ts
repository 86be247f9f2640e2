import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createScramVerifier } from "@pgbind/protocol";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { canLogIn, literal, startGateway } from "./gateway-support.ts";

// Distinctive values, so a match can only be a leak.
const CLIENT_PASSWORD = "client-Secret-7f3a9c";
const WRONG_PASSWORD = "attempted-Secret-51be02";
const ADMIN_PASSWORD = "admin-Secret-c0ffee42";

describe("pgbind gateway keeps secrets out of its output", () => {
  let origin: TestPostgres;
  let dir: { path: string; remove: () => Promise<void> };
  const clientVerifier = createScramVerifier(CLIENT_PASSWORD);

  /** The config file; the origin password is written into it (the riskiest form). */
  const binding = (originFields: Record<string, unknown> = {}) => ({
    id: "orders",
    database: "orders",
    credentials: [{ user: "app", scramVerifier: clientVerifier }],
    origin: {
      host: origin.host,
      port: origin.port,
      database: "postgres",
      user: origin.user,
      password: origin.password,
      sslmode: "disable",
      ...originFields,
    },
  });
  const writeConfig = (text: string) => writeFile(path.join(dir.path, "gateway.json"), text);
  const secrets = () => [
    ["origin password", origin.password],
    ["client password", CLIENT_PASSWORD],
    ["attempted password", WRONG_PASSWORD],
    ["admin password", ADMIN_PASSWORD],
    ["client SCRAM verifier", clientVerifier],
  ];
  const assertNoSecrets = (output: string) => {
    for (const [what, secret] of secrets()) {
      assert.doesNotMatch(output, literal(secret as string), `the ${what} leaked into the output`);
    }
  };

  before(async () => {
    [origin, dir] = await Promise.all([startTestPostgres(), makeTempDir("gw-secrets")]);
  });
  after(async () => {
    await origin?.stop();
    await dir?.remove();
  });

  it("through failed logins, reloads and rejected configs, at log level trace", async () => {
    await writeConfig(JSON.stringify({ bindings: [binding()] }));
    const gw = startGateway(
      [
        "--config",
        "gateway.json",
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "trace",
        "--admin-user",
        "admin",
      ],
      { cwd: dir.path, env: { PGBIND_ADMIN_PASSWORD: ADMIN_PASSWORD } },
    );
    try {
      const port = await gw.listening;
      await canLogIn(port, { user: "app", password: CLIENT_PASSWORD, database: "orders" });
      for (const attempt of [
        { user: "app", password: WRONG_PASSWORD, database: "orders" },
        { user: "nobody", password: CLIENT_PASSWORD, database: "orders" },
        { user: "app", password: CLIENT_PASSWORD, database: "nodb" },
        { user: "admin", password: WRONG_PASSWORD, database: "pgbind" },
        { user: "admin", password: origin.password, database: "pgbind" },
      ]) {
        await assert.rejects(canLogIn(port, attempt), { code: "28P01" });
      }
      await canLogIn(port, { user: "admin", password: ADMIN_PASSWORD, database: "pgbind" }, "SHOW CONFIG");

      // A good reload, then rejected ones: by SIGHUP and by the file watcher.
      let mark = gw.logs().length;
      gw.child.kill("SIGHUP");
      await gw.waitForLog((l) => l.event === "config_reloaded", { from: mark });
      const rejected = [
        // A typo'd key holding the password: the error names the key, never the value.
        JSON.stringify({ bindings: [{ ...binding({ pasword: origin.password }), poolSize: -1 }] }),
        // Broken JSON right after the password: the parser's message would quote it.
        `{"bindings": [{"origin": {"password": "${origin.password}" oops`,
        // Duplicate databases, each with the password.
        JSON.stringify({ bindings: [binding(), { ...binding(), id: "again" }] }),
      ];
      for (const text of rejected) {
        mark = gw.logs().length;
        await writeConfig(text);
        await gw.waitForLog((l) => l.event === "config_rejected", { from: mark });
        mark = gw.logs().length;
        gw.child.kill("SIGHUP");
        const line = await gw.waitForLog((l) => l.event === "config_rejected", { from: mark });
        assert.equal(line.reason, "SIGHUP");
        assert.equal(line.level, "error");
      }
      await canLogIn(port, { user: "app", password: CLIENT_PASSWORD, database: "orders" });
      assert.equal(await gw.stop(), 0);

      const { stdout, stderr } = gw.output();
      const logs = gw.logs();
      // The events happened, so their lines were there to leak from.
      const failures = logs.filter((l) => l.event === "auth_failed");
      assert.equal(failures.length, 5, stderr);
      assert.ok(failures.every((l) => l.level === "warn"));
      assert.ok(failures.some((l) => l.user === "admin"));
      assert.ok(logs.filter((l) => l.event === "config_rejected").length >= 6);
      assert.ok(logs.some((l) => l.event === "draining") && logs.some((l) => l.event === "stopped"));
      for (const line of stderr.trimEnd().split("\n")) {
        assert.doesNotThrow(() => JSON.parse(line), `every stderr line is JSON: ${line}`);
      }
      assertNoSecrets(stdout + stderr);
    } finally {
      gw.child.kill("SIGKILL");
    }
  });

  it("when the config is rejected at start", async () => {
    await writeConfig(JSON.stringify({ bindings: [binding({ pasword: origin.password, sslmode: "nope" })] }));
    const gw = startGateway(["--config", "gateway.json", "--listen", "127.0.0.1:0", "--log-level", "trace"], {
      cwd: dir.path,
    });
    assert.equal(await gw.exited, 2);
    const { stdout, stderr } = gw.output();
    assert.match(stderr, /bindings\[0\]\.origin\.pasword: unknown key/);
    assertNoSecrets(stdout + stderr);
  });

  it("when the origin rejects the gateway's password", async () => {
    await writeConfig(JSON.stringify({ bindings: [binding({ password: `${origin.password}-but-wrong` })] }));
    const gw = startGateway(["--config", "gateway.json", "--listen", "127.0.0.1:0", "--log-level", "trace"], {
      cwd: dir.path,
    });
    try {
      const port = await gw.listening;
      await assert.rejects(canLogIn(port, { user: "app", password: CLIENT_PASSWORD, database: "orders" }));
      assert.equal(await gw.stop(), 0);
      const { stdout, stderr } = gw.output();
      assertNoSecrets(stdout + stderr);
      assert.doesNotMatch(stdout + stderr, /-but-wrong/);
    } finally {
      gw.child.kill("SIGKILL");
    }
  });
});
