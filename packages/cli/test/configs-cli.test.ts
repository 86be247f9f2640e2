import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { type ControlPlane, startControlPlane } from "@pgbind/control";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { runCli } from "../src/index.ts";

const root = path.resolve(import.meta.dirname, "../../..");
const PGBIND = path.join(root, "node_modules/.bin/pgbind");
const ORIGIN_PASSWORD = "0rigin-S3CRET-pw";

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Every output of every command, to check at the end that no secret ever appeared. */
const outputs: string[] = [];

/** `pgbind <args>` in-process, with a test io (fast; no stdin). */
async function cli(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env,
    cwd,
  });
  outputs.push(stdout, stderr);
  return { code, stdout, stderr };
}

/** The real bin, with `input` on stdin. */
function bin(args: string[], cwd: string, input: string, env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(
      PGBIND,
      args,
      { cwd, env: { PATH: process.env.PATH ?? "", ...env } },
      (error, stdout, stderr) => {
        outputs.push(stdout, stderr);
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
    child.stdin?.end(input);
  });
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const json = <T>(r: Result): T => {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
};

interface ApiConfig {
  id: string;
  name: string;
  origin: { host: string; port: number; database: string; user: string; sslmode: string };
  poolMode: string;
  poolSize: number;
}

describe("pgbind configs and credentials against a real control plane", () => {
  let origin: TestPostgres;
  let plane: ControlPlane;
  let project: Awaited<ReturnType<typeof makeTempDir>>;
  let elsewhere: Awaited<ReturnType<typeof makeTempDir>>;
  let token: string;
  /** The origin's own flags: a reachable database with the right password. */
  let originFlags: string[];

  before(async () => {
    origin = await startTestPostgres();
    project = await makeTempDir("configs");
    elsewhere = await makeTempDir("configs-elsewhere");
    plane = await startControlPlane({
      store: `postgres://${origin.user}:${encodeURIComponent(origin.password)}@127.0.0.1:${origin.port}/postgres`,
      dataDir: path.join(project.path, ".pgbind/control"),
      listen: "127.0.0.1:0",
      masterKey: randomBytes(32),
      gatewayUrl: "postgres://127.0.0.1:6432?sslmode=disable",
      log: () => {},
    });
    token = plane.token ?? assert.fail("a first start creates the token");
    originFlags = [
      "--origin-host",
      "127.0.0.1",
      "--origin-port",
      String(origin.port),
      "--database",
      "postgres",
      "--origin-user",
      origin.user,
    ];
  });
  after(async () => {
    await plane?.close();
    await origin?.stop();
    await project?.remove();
    await elsewhere?.remove();
  });

  let ordersId: string;

  it("creates a config from flags, finding the control plane through .pgbind/control/control.json", async () => {
    const created = await cli(
      [
        "configs",
        "create",
        "orders-db",
        ...originFlags,
        "--origin-password",
        origin.password,
        "--sslmode",
        "disable",
        "--pool-size",
        "5",
      ],
      project.path,
    );
    assert.equal(created.code, 0, created.stderr);
    const id = /Created config orders-db \((pgb_[A-Za-z0-9_-]{24})\)/.exec(created.stdout)?.[1];
    assert.ok(id, created.stdout);
    ordersId = id;
    assert.match(
      created.stdout,
      new RegExp(`origin\\s+${origin.user}@127\\.0\\.0\\.1:${origin.port}/postgres`),
    );
    assert.match(created.stdout, /pool\s+transaction, 5 server connections/);
    assert.match(created.stdout, /pgbind credentials create pgb_/);
    assert.equal(created.stderr, "", "a reachable origin with the right password gives no warning");
    assert.ok(!created.stdout.includes(origin.password));
  });

  it("creates one from a connection string, the password from PGBIND_ORIGIN_PASSWORD; --json is the API object, warnings on stderr", async () => {
    const created = await cli(
      [
        "configs",
        "create",
        "from-url",
        "--connection-string",
        `postgres://app@127.0.0.1:${origin.port}/nosuchdb?sslmode=disable`,
        "--json",
      ],
      project.path,
      { PGBIND_ORIGIN_PASSWORD: ORIGIN_PASSWORD },
    );
    const body = json<{ config: ApiConfig; warnings: { code: string }[] }>(created);
    assert.equal(body.config.name, "from-url");
    assert.deepEqual(body.config.origin, {
      host: "127.0.0.1",
      port: origin.port,
      database: "nosuchdb",
      user: "app",
      sslmode: "disable",
    });
    assert.ok(body.warnings.length > 0, "user app does not exist on the origin");
    for (const w of body.warnings) assert.match(created.stderr, new RegExp(`warning ${w.code}: `));
    assert.match(created.stderr, /stored anyway/);
  });

  it("takes the origin password from stdin (--origin-password-stdin) with the real bin", async () => {
    const created = await bin(
      ["configs", "create", "from-stdin", ...originFlags, "--sslmode", "disable", "--json"],
      project.path,
      `${origin.password}\n`,
    );
    assert.equal(created.code, 2, "without the flag stdin is not read: the password is missing");
    assert.match(
      created.stderr,
      /missing the origin password \(--origin-password-stdin, PGBIND_ORIGIN_PASSWORD/,
    );
    const ok = await bin(
      [
        "configs",
        "create",
        "from-stdin",
        ...originFlags,
        "--sslmode",
        "disable",
        "--origin-password-stdin",
        "--json",
      ],
      project.path,
      `${origin.password}\n`,
    );
    const body = json<{ config: ApiConfig; warnings: unknown[] }>(ok);
    assert.deepEqual(body.warnings, [], "the password from stdin (newline stripped) is the right one");
  });

  it("lists in an aligned table and as JSON, sorted by name", async () => {
    const table = await cli(["configs", "list"], project.path);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^ID\s+NAME\s+ORIGIN\s+SSLMODE\s+POOL\s+UPDATED$/);
    assert.equal(lines.length, 4);
    const nameColumn = (lines[0] ?? "").indexOf("NAME");
    const originColumn = (lines[0] ?? "").indexOf("ORIGIN");
    for (const line of lines.slice(1)) {
      assert.match(line.slice(nameColumn), /^(from-stdin|from-url|orders-db) /);
      assert.match(line.slice(originColumn), /^\S+@127\.0\.0\.1:\d+\/\S+ /);
    }
    const listed = json<{ configs: ApiConfig[] }>(await cli(["configs", "list", "--json"], project.path));
    assert.deepEqual(
      listed.configs.map((c) => c.name),
      ["from-stdin", "from-url", "orders-db"],
    );
  });

  it("gets, updates and deletes; update merges origin fields", async () => {
    const got = await cli(["configs", "get", ordersId], project.path);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, new RegExp(`^id\\s+${ordersId}$`, "m"));
    assert.match(got.stdout, /^sslmode\s+disable$/m);
    const updated = await cli(
      ["configs", "update", ordersId, "--pool-size", "7", "--pool-mode", "session", "--json"],
      project.path,
    );
    const body = json<{ config: ApiConfig }>(updated);
    assert.equal(body.config.poolSize, 7);
    assert.equal(body.config.poolMode, "session");
    assert.equal(body.config.origin.port, origin.port, "origin untouched");
    const renamed = await cli(["configs", "update", ordersId, "--name", "orders-main"], project.path);
    assert.equal(renamed.code, 0, renamed.stderr);
    assert.match(renamed.stdout, /Updated config orders-main/);
    assert.match(renamed.stdout, /pool\s+session, 7 server connections/);
    const nothing = await cli(["configs", "update", ordersId], project.path);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /nothing to change/);

    const victim = json<{ config: ApiConfig }>(
      await cli(["configs", "get", ordersId, "--json"], project.path),
    ).config;
    assert.equal(victim.name, "orders-main");
    const doomed = json<{ config: ApiConfig }>(
      await cli(
        [
          "configs",
          "create",
          "doomed",
          "--connection-string",
          "postgres://u:p4ssw0rd@127.0.0.1:1/d?sslmode=disable",
          "--json",
        ],
        project.path,
      ),
    ).config;
    const deleted = await cli(["configs", "delete", doomed.id], project.path);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, new RegExp(`Deleted config ${doomed.id}`));
    const gone = await cli(["configs", "get", doomed.id], project.path);
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, new RegExp(`${doomed.id}.*pgbind configs list`));
  });

  it("lists every problem of a rejected request (400), naming the flags", async () => {
    const bad = await cli(
      [
        "configs",
        "create",
        "bad",
        ...originFlags.slice(0, 2),
        "--origin-port",
        "0",
        "--database",
        "d",
        "--origin-user",
        "u",
        "--origin-password",
        ORIGIN_PASSWORD,
        "--pool-size",
        "0",
      ],
      project.path,
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /the control plane rejected the request:\n/);
    assert.match(bad.stderr, /^ {2}origin\.port \(--origin-port\): .*1 to 65535$/m);
    assert.match(bad.stderr, /^ {2}poolSize \(--pool-size\): .*1 to 10000$/m);
    const badName = await cli(
      ["configs", "create", "bad name!", "--connection-string", "postgres://u:p4ssw0rd@h/d"],
      project.path,
    );
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /name \(<name>\): /);
  });

  it("reports an unknown id (404) and a duplicate name (409)", async () => {
    const unknown = await cli(["configs", "get", "pgb_doesnotexist000000000000"], project.path);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /pgb_doesnotexist000000000000/);
    const creds = await cli(["credentials", "list", "pgb_doesnotexist000000000000"], project.path);
    assert.equal(creds.code, 2);
    const duplicate = await cli(
      ["configs", "create", "from-url", "--connection-string", "postgres://u:p4ssw0rd@127.0.0.1:1/d"],
      project.path,
    );
    assert.equal(duplicate.code, 2);
    assert.match(duplicate.stderr, /"from-url"/);
    assert.match(duplicate.stderr, /choose another name/);
  });

  it("mints (password shown once), lists, rotates and revokes credentials", async () => {
    const minted = await cli(["credentials", "create", ordersId], project.path);
    assert.equal(minted.code, 0, minted.stderr);
    const password = /^ {2}password\s+(\S+)$/m.exec(minted.stdout)?.[1];
    assert.ok(password, minted.stdout);
    assert.match(minted.stdout, /shown only this once/);
    assert.match(
      minted.stdout,
      new RegExp(
        `connection string\\s+postgres://pgb_u_\\w+:${password.replace(/[-]/g, "\\-")}@127\\.0\\.0\\.1:6432/${ordersId}\\?sslmode=disable`,
      ),
    );
    const firstId = /Minted credential (pgc_\S+)/.exec(minted.stdout)?.[1];
    const asJson = json<{ credential: { id: string }; password: string; connectionString: string }>(
      await cli(["credentials", "create", ordersId, "--json"], project.path),
    );
    assert.ok(asJson.password.length >= 32);

    const listed = await cli(["credentials", "list", ordersId], project.path);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^ID\s+USER\s+STATUS\s+CREATED\s+EXPIRES\s+REVOKED$/m);
    assert.ok(!listed.stdout.includes(password) && !listed.stdout.includes(asJson.password));
    assert.equal((listed.stdout.match(/ active /g) ?? []).length, 2);

    const rotated = await cli(["credentials", "rotate", ordersId, "--grace-seconds", "120"], project.path);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, /Rotated: minted credential pgc_/);
    assert.match(rotated.stdout, /Still accepted until they expire:/);
    const after = json<{ credentials: { id: string; status: string }[] }>(
      await cli(["credentials", "list", ordersId, "--json"], project.path),
    ).credentials;
    assert.deepEqual(
      after.map((c) => c.status),
      ["active", "expiring", "expiring"],
    );

    const revoked = await cli(["credentials", "revoke", ordersId, firstId ?? ""], project.path);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`Revoked ${firstId}`));
    const unknown = await cli(
      ["credentials", "revoke", ordersId, "pgc_doesnotexist000000000000"],
      project.path,
    );
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /pgc_doesnotexist000000000000.*pgbind credentials list/);
    const badGrace = await cli(["credentials", "rotate", ordersId, "--grace-seconds=-1"], project.path);
    assert.equal(badGrace.code, 2);
    assert.match(badGrace.stderr, /graceSeconds \(--grace-seconds\)/);
  });

  it("uses --control-url/--token and PGBIND_CONTROL_URL/PGBIND_TOKEN from anywhere; a wrong token is refused", async () => {
    const viaEnv = await cli(["configs", "list", "--json"], elsewhere.path, {
      PGBIND_CONTROL_URL: plane.url,
      PGBIND_TOKEN: token,
    });
    assert.equal(json<{ configs: unknown[] }>(viaEnv).configs.length, 3);
    const viaFlags = await cli(
      ["configs", "list", "--control-url", `${plane.url}/`, "--token", token],
      elsewhere.path,
    );
    assert.equal(viaFlags.code, 0, viaFlags.stderr);

    const wrongEnv = await cli(["configs", "list"], elsewhere.path, {
      PGBIND_CONTROL_URL: plane.url,
      PGBIND_TOKEN: "pgbt_wrong-token",
    });
    assert.equal(wrongEnv.code, 2);
    assert.match(wrongEnv.stderr, /refused the token from PGBIND_TOKEN/);
    assert.ok(!wrongEnv.stderr.includes("pgbt_wrong-token"));
    const wrongFlag = await cli(["configs", "list", "--token", "pgbt_wrong-token"], project.path);
    assert.equal(wrongFlag.code, 2);
    assert.match(wrongFlag.stderr, /refused the token from --token/);
    const none = await cli(["configs", "list", "--control-url", plane.url], elsewhere.path);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /needs a token and none was found/);
  });

  it("explains an unreachable or unconfigured control plane", async () => {
    const closed = await closedPort();
    const unreachable = await cli(
      ["configs", "list", "--control-url", `http://127.0.0.1:${closed}`, "--token", token],
      elsewhere.path,
    );
    assert.equal(unreachable.code, 1);
    assert.match(
      unreachable.stderr,
      new RegExp(
        `cannot reach the control plane at http://127\\.0\\.0\\.1:${closed} \\(from --control-url\\): ECONNREFUSED`,
      ),
    );
    assert.match(unreachable.stderr, /pgbind control/);
    const none = await cli(["configs", "list"], elsewhere.path);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no control plane configured: pass --control-url/);
    // A control.json left behind by a control plane that is gone.
    const stale = path.join(elsewhere.path, ".pgbind/control");
    await mkdir(stale, { recursive: true });
    await writeFile(
      path.join(stale, "control.json"),
      JSON.stringify({ url: `http://127.0.0.1:${closed}`, pid: 2 ** 22 + 7, tokenFile: "token" }),
    );
    const gone = await cli(["configs", "list"], elsewhere.path);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /pid \d+, which is no longer running; start it again with `pgbind control`/);
  });

  it("rejects bad command lines with exit 2, naming the flag and the valid values", async () => {
    const cases: [string[], RegExp][] = [
      [["configs"], /expected a subcommand: create, list, get, update or delete/],
      [["configs", "frob"], /unknown subcommand "frob"/],
      [["configs", "create"], /expected <name>, got 0 arguments/],
      [
        ["configs", "create", "x", "--pool-mode", "bogus", "--connection-string", "postgres://u:p@h/d"],
        /--pool-mode: "bogus" is not one of transaction, session/,
      ],
      [
        ["configs", "create", "x", "--sslmode", "maybe", "--connection-string", "postgres://u:p@h/d"],
        /--sslmode: "maybe" is not one of disable, prefer, require, verify-ca, verify-full/,
      ],
      [
        ["configs", "create", "x", "--pool-size", "lots", "--connection-string", "postgres://u:p@h/d"],
        /--pool-size: "lots" is not a whole number/,
      ],
      [
        ["configs", "create", "x", "--connection-string", "postgres://u:p@h/d", "--origin-host", "h"],
        /describe the origin twice/,
      ],
      [
        ["configs", "create", "x", "--connection-string", `mysql://u:${ORIGIN_PASSWORD}@h/d`],
        /scheme "mysql:" is not postgres:/,
      ],
      [
        ["configs", "create", "x", "--origin-host", "h"],
        /missing --database <db>, --origin-user <user>, the origin password/,
      ],
      [["configs", "list", "--bogus"], /Unknown option '--bogus'/],
      [["credentials", "revoke", "pgb_x"], /expected <config-id> <credential-id>, got 1 argument/],
      [
        ["credentials", "rotate", "pgb_x", "--grace-seconds", "soon"],
        /--grace-seconds: "soon" is not a whole number/,
      ],
    ];
    for (const [args, expected] of cases) {
      const result = await cli(args, project.path);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, expected, args.join(" "));
    }
    const help = await cli(["configs", "create", "--help"], project.path);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--origin-password-stdin/);
    assert.match(help.stdout, /PGBIND_ORIGIN_PASSWORD/);
  });

  it("never prints the token or the origin password", async () => {
    const tokenFile = await stat(plane.tokenFile);
    assert.equal(tokenFile.mode & 0o777, 0o600);
    for (const out of outputs) {
      assert.ok(!out.includes(token), "the API token appeared in an output");
      assert.ok(!out.includes(ORIGIN_PASSWORD), "an origin password appeared in an output");
      assert.ok(!out.includes(origin.password), "the origin password appeared in an output");
    }
  });
});

describe("pgbind help for the control plane commands", () => {
  it("lists control, configs and credentials with the usage line each module reports", async () => {
    const modules = {
      control: (await import("../src/commands/control.ts")).CONTROL_USAGE,
      configs: (await import("../src/commands/configs.ts")).CONFIGS_USAGE,
      credentials: (await import("../src/commands/credentials.ts")).CREDENTIALS_USAGE,
    };
    const help = await cli(["help"], root);
    for (const [name, usage] of Object.entries(modules)) {
      assert.ok(help.stdout.includes(usage), `help should show "${usage}" for ${name}`);
      const own = await cli([name, "--help"], root);
      assert.equal(own.code, 0);
      assert.ok(own.stdout.includes(usage), `pgbind ${name} --help should show its usage`);
    }
  });
});
