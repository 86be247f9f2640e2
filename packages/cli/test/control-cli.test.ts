import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { access, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { runCli } from "../src/index.ts";
import { type PgbindProcess, spawnPgbind } from "./pgbind-process.ts";

const MASTER_KEY = randomBytes(32).toString("base64");
const GATEWAY = "postgres://127.0.0.1:6432?sslmode=disable";

/** In-process `pgbind <args>`, for setting up configs quickly. */
async function cli(args: string[], cwd: string) {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: {},
    cwd,
  });
  return { code, stdout, stderr };
}

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** A backend that reports what env.DB and PGBIND_DB_BINDING hold, password masked. */
const BACKEND = `export default {
  fetch(request, env) {
    const injected = JSON.parse(process.env.PGBIND_DB_BINDING ?? "null");
    return Response.json({
      host: env.DB.host, port: env.DB.port, user: env.DB.user, database: env.DB.database,
      connectionString: env.DB.connectionString.replace(env.DB.password, "***"),
      injected: injected && injected.service,
    });
  },
};
`;

describe("pgbind control, and serve/run resolving manifest ids through it", () => {
  let store: TestPostgres;
  let project: Awaited<ReturnType<typeof makeTempDir>>;
  let storeUrl: string;
  let token: string;
  let control: PgbindProcess;
  let controlUrl: string;
  let configId: string;
  const controlDir = () => path.join(project.path, ".pgbind/control");

  before(async () => {
    store = await startTestPostgres();
    project = await makeTempDir("control");
    storeUrl = `postgres://${store.user}:${encodeURIComponent(store.password)}@127.0.0.1:${store.port}/postgres`;
    await writeFile(path.join(project.path, "package.json"), '{ "type": "module" }');
    await writeFile(path.join(project.path, "backend.js"), BACKEND);
  });
  after(async () => {
    control?.child.kill("SIGKILL");
    await store?.stop();
    await project?.remove();
  });

  it("rejects bad flags with exit 2, naming the flag and what is valid, without echoing secrets", async () => {
    const cases: [string[], RegExp][] = [
      [["--listen", "nope"], /--listen: "nope" is not host:port; use e\.g\. 127\.0\.0\.1:8788/],
      [["--gateway-url", "postgres://u:gw-S3CRET@h:6432"], /--gateway-url: must not hold a user or password/],
      [
        ["--gateway-url", "postgres://h:6432?sslmode=sometimes"],
        /sslmode "sometimes" is not one of disable, prefer/,
      ],
      [
        ["--store", "http://user:st0re-S3CRET@h/db"],
        /--store: scheme "http:" is not postgres: or postgresql:/,
      ],
      [["--bogus"], /Unknown option '--bogus'/],
      [["extra"], /takes no arguments/],
    ];
    for (const [args, expected] of cases) {
      const result = await cli(["control", ...args], project.path);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, expected);
      assert.doesNotMatch(result.stderr, /S3CRET/);
    }
    const help = await cli(["control", "--help"], project.path);
    assert.match(help.stdout, /PGBIND_MASTER_KEY/);
  });

  it("fails clearly without a master key for an external store", async () => {
    const run = spawnPgbind(["control", "--store", storeUrl, "--listen", "127.0.0.1:0"], project.path);
    assert.equal(await run.exit, 1);
    assert.match(run.stderr(), /MASTER_KEY_MISSING: .*PGBIND_MASTER_KEY/);
    assert.ok(!run.stderr().includes(store.password));
  });

  it("starts, prints the URL, the data dir and the token once, and writes control.json", async () => {
    control = spawnPgbind(
      ["control", "--store", storeUrl, "--listen", "127.0.0.1:0", "--gateway-url", GATEWAY],
      project.path,
      { PGBIND_MASTER_KEY: MASTER_KEY },
    );
    controlUrl = (await control.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)\n/))[1] as string;
    const out = (await control.waitFor(/Try: pgbind configs list\n/)).input;
    assert.match(out, /^ {2}data dir {2}\.pgbind\/control /m);
    assert.match(
      out,
      new RegExp(`^ {2}store {5}postgres://postgres:\\*{8}@127\\.0\\.0\\.1:${store.port}/postgres$`, "m"),
    );
    assert.match(out, /^ {2}gateway {3}postgres:\/\/127\.0\.0\.1:6432\?sslmode=disable$/m);
    assert.match(out, /API token \(shown only this once; saved in \.pgbind\/control\/token, mode 0600\):/);
    token = /^ {2}(pgbt_\S+)$/m.exec(out)?.[1] ?? assert.fail(out);
    assert.equal((await readFile(path.join(controlDir(), "token"), "utf8")).trim(), token);
    assert.equal((await stat(path.join(controlDir(), "token"))).mode & 0o777, 0o600);
    const discovery = JSON.parse(await readFile(path.join(controlDir(), "control.json"), "utf8"));
    assert.equal(discovery.url, controlUrl);
    assert.ok(!out.includes(store.password));

    const created = await cli(
      [
        "configs",
        "create",
        "main",
        "--connection-string",
        `postgres://${store.user}:${encodeURIComponent(store.password)}@127.0.0.1:${store.port}/postgres?sslmode=disable`,
        "--json",
      ],
      project.path,
    );
    assert.equal(created.code, 0, created.stderr);
    configId = JSON.parse(created.stdout).config.id;
  });

  it("serve resolves a manifest id into a gateway binding, minting a credential once and reusing it", async () => {
    await writeFile(
      path.join(project.path, "w7s.json"),
      JSON.stringify({ bindings: { hyperdrive: [{ binding: "DB", id: configId }] } }),
    );
    const first = spawnPgbind(["serve", "backend.js", "--port", "0"], project.path);
    const url = (await first.waitFor(/Serving \S+ on (http:\/\/\S+)\n/))[1] as string;
    const seen = (await (await fetch(url)).json()) as Record<string, unknown>;
    assert.equal(seen.host, "127.0.0.1");
    assert.equal(seen.port, 6432);
    assert.equal(seen.database, configId);
    assert.match(String(seen.user), /^pgb_u_/);
    assert.equal(
      seen.connectionString,
      `postgres://${seen.user}:***@127.0.0.1:6432/${configId}?sslmode=disable`,
    );
    assert.equal(seen.injected, "gateway", "getPostgresConnection('DB') in the backend finds it too");
    assert.match(
      first.stdout(),
      new RegExp(`env\\.DB → postgres://${seen.user}:\\*{8}@127\\.0\\.0\\.1:6432/${configId}`),
    );
    assert.match(
      first.stderr(),
      /DB: config main \(pgb_\S+\) from http:\/\/127\.0\.0\.1:\d+, gateway 127\.0\.0\.1:6432, credential pgc_\S+ \(minted, cached in \.pgbind\/control\/credentials\/pgb_\S+\.json\)/,
    );
    assert.equal(await first.stop(), 0);

    const cache = path.join(controlDir(), "credentials", `${configId}.json`);
    assert.equal((await stat(cache)).mode & 0o777, 0o600);
    const cached = JSON.parse(await readFile(cache, "utf8"));
    assert.equal(cached.user, seen.user);

    const second = spawnPgbind(["serve", "backend.js", "--port", "0"], project.path);
    const url2 = (await second.waitFor(/Serving \S+ on (http:\/\/\S+)\n/))[1] as string;
    assert.equal(((await (await fetch(url2)).json()) as { user: string }).user, seen.user);
    assert.match(second.stderr(), new RegExp(`credential ${cached.credentialId} \\(reused\\)`));
    assert.equal(await second.stop(), 0);

    // Revoked: the next start mints a new one.
    const revoked = await cli(["credentials", "revoke", configId, cached.credentialId], project.path);
    assert.equal(revoked.code, 0, revoked.stderr);
    const run = spawnPgbind(
      [
        "run",
        "--",
        process.execPath,
        "-e",
        "const b = JSON.parse(process.env.PGBIND_DB_BINDING); console.log(JSON.stringify({ service: b.service, host: b.host, port: b.port, database: b.database, username: b.username }))",
      ],
      project.path,
    );
    assert.equal(await run.exit, 0, run.stderr());
    const injected = JSON.parse(run.stdout());
    assert.equal(injected.service, "gateway");
    assert.equal(injected.database, configId);
    assert.notEqual(injected.username, seen.user);
    assert.match(run.stderr(), /\(minted, cached in/);
    for (const out of [first, second, run].flatMap((s) => [s.stdout(), s.stderr()])) {
      assert.ok(!out.includes(cached.password), "a credential password appeared in an output");
      assert.ok(!out.includes(token), "the API token appeared in an output");
    }
  });

  it("serve and run fail with exit 2 naming the binding and an id the control plane does not know", async () => {
    await writeFile(
      path.join(project.path, "w7s.json"),
      JSON.stringify({ bindings: { hyperdrive: [{ binding: "ORDERS", id: "pgb_unknown" }] } }),
    );
    const serve = spawnPgbind(["serve", "backend.js", "--port", "0"], project.path);
    assert.equal(await serve.exit, 2);
    assert.match(
      serve.stderr(),
      /ORDERS \(id "pgb_unknown"\): the control plane at http:\/\/127\.0\.0\.1:\d+ has no config with id "pgb_unknown"; see `pgbind configs list`/,
    );
    const run = spawnPgbind(["run", "--", process.execPath, "-e", ""], project.path);
    assert.equal(await run.exit, 2);
    assert.match(
      run.stderr(),
      /binding ORDERS \(id "pgb_unknown"\): the control plane .* has no config with id "pgb_unknown"/,
    );
  });

  it("closes on SIGTERM; a restart prints where the token is instead of the token; no gateway URL is a clear serve error", async () => {
    assert.equal(await control.stop(), 0);
    assert.equal(await exists(path.join(controlDir(), "control.json")), false);
    const logs = control.stderr().trim().split("\n");
    for (const line of logs) assert.doesNotThrow(() => JSON.parse(line), `not a JSON line: ${line}`);
    assert.ok(!control.stderr().includes(token) && !control.stderr().includes(store.password));

    control = spawnPgbind(["control", "--store", storeUrl, "--listen", "127.0.0.1:0"], project.path, {
      PGBIND_MASTER_KEY: MASTER_KEY,
    });
    const out = (await control.waitFor(/Try: pgbind configs list\n/)).input;
    assert.ok(!out.includes(token));
    assert.match(out, /^ {2}token {5}in \.pgbind\/control\/token /m);
    assert.match(out, /^ {2}gateway {3}not set: pass --gateway-url/m);

    await writeFile(
      path.join(project.path, "w7s.json"),
      JSON.stringify({ bindings: { hyperdrive: [{ binding: "DB", id: configId }] } }),
    );
    const serve = spawnPgbind(["serve", "backend.js", "--port", "0"], project.path);
    assert.equal(await serve.exit, 2);
    assert.match(
      serve.stderr(),
      /DB \(id "pgb_\S+"\): the control plane at http:\/\/127\.0\.0\.1:\d+ does not know where the gateway is; restart it with `pgbind control --gateway-url postgres:\/\/<gateway-host>:6432`/,
    );
    // An injected binding still wins over the control plane.
    const injected = spawnPgbind(["serve", "backend.js", "--port", "0"], project.path, {
      PGBIND_DB_BINDING: JSON.stringify({
        service: "local",
        host: "127.0.0.1",
        port: 5432,
        database: "app",
        username: "postgres",
        password: "local-pw",
      }),
    });
    await injected.waitFor(/env\.DB → postgres:\/\/postgres:\*{8}@127\.0\.0\.1:5432\/app/);
    assert.equal(await injected.stop(), 0);
    assert.equal(await control.stop(), 0);
  });
});
