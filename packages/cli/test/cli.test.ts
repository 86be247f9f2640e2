import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, "../../..");
const SECRET = "cli-S3CRET-pw";

/** Runs the real `pgbind` bin the way `npx pgbind` does, from the repository root. */
async function pgbind(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(path.join(root, "node_modules/.bin/pgbind"), args, {
      cwd: root,
      env: { PATH: process.env.PATH, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const binding = JSON.stringify({
  service: "local",
  host: "127.0.0.1",
  port: 5432,
  database: "app",
  username: "postgres",
  password: SECRET,
});

describe("pgbind CLI", () => {
  it("resolves a binding and masks the password in the table and in --json", async () => {
    const table = await pgbind(["resolve", "db"], { PGBIND_DB_BINDING: binding });
    assert.equal(table.code, 0, table.stderr);
    assert.match(
      table.stdout,
      /connection\s+postgres:\/\/postgres:\*{8}@127\.0\.0\.1:5432\/app\?sslmode=disable/,
    );
    assert.match(table.stdout, /tls\s+off/);
    const json = await pgbind(["resolve", "db", "--json"], { PGBIND_DB_BINDING: binding });
    assert.equal(JSON.parse(json.stdout).password, "********");
    for (const out of [table.stdout, table.stderr, json.stdout, json.stderr])
      assert.doesNotMatch(out, /S3CRET/);
  });

  it("exits 1 with the error code for a missing or invalid binding", async () => {
    const missing = await pgbind(["resolve", "db"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /BINDING_NOT_FOUND: .*PGBIND_DB_BINDING/);
    const invalid = await pgbind(["resolve", "db", "--json"], {
      PGBIND_DB_BINDING: `{"service":"local","password":"${SECRET}"}`,
    });
    assert.equal(invalid.code, 1);
    assert.equal(JSON.parse(invalid.stdout).error.code, "INVALID_BINDING_CONFIG");
    assert.doesNotMatch(invalid.stdout + invalid.stderr, /S3CRET/);
  });

  it("exits 2 on a bad command line", async () => {
    assert.equal((await pgbind(["resolve"])).code, 2);
    assert.equal((await pgbind(["resolve", "db", "--bogus"])).code, 2);
    const unknown = await pgbind(["frobnicate"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    assert.match((await pgbind(["--version"])).stdout, /^\d+\.\d+\.\d+\n$/);
  });
});

describe("pgbind help", () => {
  it("lists every command with the usage line the command itself reports", async () => {
    const help = (await pgbind(["help"])).stdout;
    const modules = {
      dev: (await import("../src/commands/dev.ts")).DEV_USAGE,
      run: (await import("../src/commands/run.ts")).RUN_USAGE,
      serve: (await import("../src/commands/serve.ts")).SERVE_USAGE,
      check: (await import("../src/commands/check.ts")).CHECK_USAGE,
      resolve: (await import("../src/commands/resolve.ts")).RESOLVE_USAGE,
      gateway: (await import("../src/commands/gateway.ts")).GATEWAY_USAGE,
    };
    for (const [name, usage] of Object.entries(modules)) {
      assert.ok(help.includes(usage), `help should show "${usage}" for ${name}`);
      const own = await pgbind([name, "--help"]);
      assert.equal(own.code, 0);
      assert.ok(own.stdout.includes(usage), `pgbind ${name} --help should show its usage`);
    }
  });
});
