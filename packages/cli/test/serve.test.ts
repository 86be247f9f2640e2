import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import { makeTempDir } from "../../../test-support/tmp.ts";

const root = path.resolve(import.meta.dirname, "../../..");
const PGBIND = path.join(root, "node_modules/.bin/pgbind");
const FIXTURES = path.join(import.meta.dirname, "fixtures");
const ENTRY = "dist/server/index.js";
const PASSWORD = "s3cr3t/pw@serve";
const MANIFEST = { bindings: { hyperdrive: [{ binding: "DB", id: "main-db" }] } };

const localBinding = (fields: {
  host: string;
  port: number;
  username: string;
  password: string;
  database: string;
}) => JSON.stringify({ service: "local", ...fields });
const BINDING = localBinding({
  host: "127.0.0.1",
  port: 5432,
  username: "postgres",
  password: PASSWORD,
  database: "app",
});

interface Serve {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exit: Promise<number | null>;
}

const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) child.kill("SIGKILL");
});

/** Spawns the real CLI; `ready` waits for the "Serving … on <url>" line. */
function pgbind(args: string[], cwd: string, env: Record<string, string> = {}) {
  const child = spawn(PGBIND, args, { cwd, env: { PATH: process.env.PATH ?? "", ...env } });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exit = new Promise<number | null>((resolve) =>
    child.once("close", (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  const out = { stdout: () => stdout, stderr: () => stderr };
  const ready = new Promise<Serve>((resolve, reject) => {
    const check = () => {
      const url = /Serving \S+ on (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url !== undefined) resolve({ child, url, exit, ...out });
    };
    child.stdout.on("data", check);
    void exit.then((code) => reject(new Error(`pgbind exited ${code} before serving:\n${stdout}${stderr}`)));
  });
  // Commands expected to fail are awaited through `exit` only.
  ready.catch(() => undefined);
  return { exit, ready, ...out };
}

/** A project dir: package.json (ESM), optional w7s.json, and `source` (or a fixture) as dist/server/index.js. */
async function project(
  name: string,
  entry: { source?: string; fixture?: string },
  manifest: unknown = MANIFEST,
) {
  const dir = await makeTempDir(`serve-${name}`);
  await mkdir(path.join(dir.path, "dist/server"), { recursive: true });
  await writeFile(path.join(dir.path, "package.json"), '{ "type": "module" }');
  if (manifest !== null) await writeFile(path.join(dir.path, "w7s.json"), JSON.stringify(manifest));
  const file = path.join(dir.path, ENTRY);
  if (entry.fixture !== undefined) await copyFile(path.join(FIXTURES, entry.fixture), file);
  if (entry.source !== undefined) await writeFile(file, entry.source);
  return { ...dir, file };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

describe("pgbind serve", () => {
  let app: Awaited<ReturnType<typeof project>>;
  let server: Serve;
  before(async () => {
    app = await project("routes", { fixture: "serve-routes.js" });
    server = await pgbind(["serve", ENTRY, "--port", "0"], app.path, { PGBIND_DB_BINDING: BINDING }).ready;
  });
  after(async () => {
    server?.child.kill("SIGKILL");
    await app?.remove();
  });

  it("answers a GET and prints the URL and the masked binding", async () => {
    assert.match(server.stdout(), /^Serving dist\/server\/index\.js on http:\/\/127\.0\.0\.1:\d+\n/);
    assert.match(
      server.stdout(),
      /env\.DB → postgres:\/\/postgres:\*{8}@127\.0\.0\.1:5432\/app\?sslmode=disable/,
    );
    const res = await fetch(`${server.url}/?q=1`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "hello GET /?q=1");
    assert.equal(res.headers.get("x-url"), `${server.url}/?q=1`);
    const cookies = await fetch(`${server.url}/cookies`);
    assert.equal(cookies.status, 201);
    assert.equal(cookies.statusText, "Made");
    assert.deepEqual(cookies.headers.getSetCookie(), ["a=1; Path=/", "b=2; Path=/"]);
  });

  it("gives env.DB the Hyperdrive shape with the password masked when serialised", async () => {
    const env = (await (await fetch(`${server.url}/env`)).json()) as Record<string, unknown>;
    const masked = "postgres://postgres:********@127.0.0.1:5432/app?sslmode=disable";
    assert.deepEqual(env.envKeys, ["DB"]);
    assert.deepEqual(env.keys, ["host", "port", "user", "database"]);
    assert.deepEqual(JSON.parse(env.json as string), {
      connectionString: masked,
      host: "127.0.0.1",
      port: 5432,
      user: "postgres",
      password: "********",
      database: "app",
    });
    assert.equal(env.string, masked);
    assert.doesNotMatch(env.spread as string, /s3cr3t/);
    assert.equal(env.password, PASSWORD);
    assert.equal(
      env.connectionString,
      "postgres://postgres:s3cr3t%2Fpw%40serve@127.0.0.1:5432/app?sslmode=disable",
    );
    assert.deepEqual([env.host, env.port, env.user, env.database], ["127.0.0.1", 5432, "postgres", "app"]);
  });

  it("streams a 5 MB request body through to the handler and back", async () => {
    const body = randomBytes(5 * 1024 * 1024);
    const echoed = new Uint8Array(
      await (await fetch(`${server.url}/echo`, { method: "POST", body })).arrayBuffer(),
    );
    assert.equal(echoed.byteLength, body.byteLength);
    assert.equal(sha256(echoed), sha256(body));
    const hashed = await (await fetch(`${server.url}/hash`, { method: "PUT", body })).json();
    assert.deepEqual(hashed, { sha256: sha256(body), bytes: body.byteLength });
  });

  it("streams a response: the first chunk arrives before the last one is produced", async () => {
    const res = await fetch(`${server.url}/stream`);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    assert.equal(new TextDecoder().decode(first.value), "first;");
    await fetch(`${server.url}/release`);
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read())
      rest += new TextDecoder().decode(r.value);
    assert.equal(rest, "last");
  });

  it("respects backpressure and cancels the body when the client goes away", async () => {
    const status = async () =>
      (await (await fetch(`${server.url}/infinite-status`)).json()) as {
        pulled: number;
        cancelled: boolean;
        aborted: boolean;
      };
    const req = http.get(`${server.url}/infinite`);
    const res = await new Promise<http.IncomingMessage>((resolve) => req.once("response", resolve));
    res.pause();
    await sleep(500);
    const stalled = (await status()).pulled;
    await sleep(300);
    const later = (await status()).pulled;
    assert.ok(
      later - stalled <= 2,
      `the body kept being read while the client was not reading: ${stalled} → ${later}`,
    );
    assert.ok(later * 64 < 64 * 1024, `${later * 64} KiB read ahead of a paused client`);
    req.destroy();
    const final = await until("the body to be cancelled", async () => {
      const s = await status();
      return s.cancelled && s.aborted ? s : undefined;
    });
    assert.ok(final.cancelled && final.aborted);
  });

  it("runs ctx.waitUntil work after the response was sent", async () => {
    const file = path.join(app.path, "later.txt");
    const res = await fetch(`${server.url}/later?file=${encodeURIComponent(file)}`);
    assert.equal(res.status, 202);
    assert.equal(await readFile(file, "utf8").catch(() => "absent"), "absent");
    await fetch(`${server.url}/release-later`);
    // writeFile creates the file before it writes: wait for the content.
    const written = await until(
      "the waitUntil file",
      async () => (await readFile(file, "utf8")) || undefined,
    );
    assert.equal(written, "written after the response");
  });

  it("answers a throwing handler with a bare 500, logs the stack masked, and keeps serving", async () => {
    for (const route of ["/throw", "/not-a-response"]) {
      const res = await fetch(`${server.url}${route}`);
      assert.equal(res.status, 500);
      assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(await res.text(), "Internal Server Error");
    }
    const log = await until("the logged stack", async () =>
      /returned/.test(server.stderr()) ? server.stderr() : undefined,
    );
    assert.match(
      log,
      /GET \/throw: the fetch handler threw:\nError: query failed for \*{8} \(password \*{8}\)\n\s+at /,
    );
    assert.match(log, /GET \/not-a-response: the fetch handler returned \{ status: 200 \}, not a Response/);
    assert.doesNotMatch(log, /s3cr3t/);
    assert.equal(await (await fetch(server.url)).text(), "hello GET /");
  });

  it("logs a promise the handler forgot to await, masked, and keeps serving", async () => {
    assert.equal(await (await fetch(`${server.url}/stray`)).text(), "stray");
    const log = await until("the logged rejection", async () =>
      /unhandled promise rejection/.test(server.stderr()) ? server.stderr() : undefined,
    );
    assert.match(log, /unhandled promise rejection in the backend .*:\nError: forgot to await \*{8}\n/);
    assert.doesNotMatch(log, /s3cr3t/);
    assert.equal(await (await fetch(server.url)).text(), "hello GET /");
  });
});

describe("pgbind serve: startup and shutdown", () => {
  const dirs: { remove: () => Promise<void> }[] = [];
  after(async () => {
    await Promise.all(dirs.map((d) => d.remove()));
  });
  const tracked = async (...args: Parameters<typeof project>) => {
    const p = await project(...args);
    dirs.push(p);
    return p;
  };

  it("refuses a missing binding variable with exit 2, naming the binding and its id", async () => {
    const p = await tracked("unbound", { fixture: "serve-routes.js" });
    const run = pgbind(["serve", ENTRY], p.path);
    assert.equal(await run.exit, 2);
    assert.match(run.stderr(), /^pgbind serve: w7s\.json declares a binding that could not be resolved:\n/);
    assert.match(run.stderr(), /DB \(id "main-db"\): PGBIND_DB_BINDING is not set/);
    assert.match(run.stderr(), /`pgbind dev -- pgbind serve dist\/server\/index\.js`/);
  });

  it("refuses a missing entry and an entry without a default fetch with exit 2", async () => {
    const p = await tracked("entry", { source: "export const fetch = () => new Response('x');\n" });
    const missing = pgbind(["serve", "dist/nope.js"], p.path, { PGBIND_DB_BINDING: BINDING });
    assert.equal(await missing.exit, 2);
    assert.match(missing.stderr(), /^pgbind serve: dist\/nope\.js does not exist/);
    const invalid = pgbind(["serve", ENTRY], p.path, { PGBIND_DB_BINDING: BINDING });
    assert.equal(await invalid.exit, 2);
    assert.match(
      invalid.stderr(),
      /^pgbind serve: dist\/server\/index\.js has no default export with a fetch\(request, env, ctx\) method \(it has no default export\)/,
    );
  });

  it("rejects bad flags and ports with exit 2, and a busy port with exit 1", async () => {
    const p = await tracked("flags", { fixture: "serve-routes.js" }, null);
    const bogus = pgbind(["serve", ENTRY, "--bogus"], p.path);
    assert.equal(await bogus.exit, 2);
    assert.match(bogus.stderr(), /Unknown option '--bogus'[\s\S]*Usage: pgbind serve <entry>/);
    const port = pgbind(["serve", ENTRY, "--port", "70000"], p.path);
    assert.equal(await port.exit, 2);
    assert.match(port.stderr(), /--port "70000" is not a port; use 1–65535, or 0 for any free port/);
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    try {
      const busyPort = (blocker.address() as net.AddressInfo).port;
      const busy = pgbind(["serve", ENTRY, "--port", String(busyPort)], p.path);
      assert.equal(await busy.exit, 1);
      assert.match(
        busy.stderr(),
        new RegExp(`port ${busyPort} is in use; pass --port <n> \\(0 picks a free one\\)`),
      );
    } finally {
      blocker.close();
    }
  });

  it("serves without bindings when there is no w7s.json, and says so", async () => {
    const p = await tracked(
      "nomanifest",
      { source: "export default { fetch: (r, env) => Response.json(env) };\n" },
      null,
    );
    const s = await pgbind(["serve", ENTRY, "--port", "0"], p.path).ready;
    assert.match(s.stdout(), /No w7s\.json in .*: serving without bindings/);
    assert.deepEqual(await (await fetch(s.url)).json(), {});
    s.child.kill("SIGTERM");
    assert.equal(await s.exit, 0);
  });

  it("--watch reloads a changed handler and keeps the last good one when the new one is broken", async () => {
    const version = (v: string) => `export default { fetch: () => new Response("${v}") };\n`;
    const p = await tracked("watch", { source: version("v1") }, null);
    const s = await pgbind(["serve", ENTRY, "--port", "0", "--watch"], p.path).ready;
    const body = async () => (await fetch(s.url)).text();
    assert.equal(await body(), "v1");
    await writeFile(p.file, version("v2"));
    await until("v2", async () => ((await body()) === "v2" ? true : undefined));
    assert.match(s.stderr(), /pgbind serve: reloaded dist\/server\/index\.js/);
    await writeFile(p.file, "export default { fetch( };\n");
    await until("the reload error", async () => (/did not load/.test(s.stderr()) ? true : undefined));
    assert.match(
      s.stderr(),
      /still serving the previous version:\ndist\/server\/index\.js could not be loaded: SyntaxError/,
    );
    assert.equal(await body(), "v2");
    s.child.kill("SIGTERM");
    assert.equal(await s.exit, 0);
  });

  it("on SIGTERM finishes in-flight requests and waitUntil work, then exits 0", async () => {
    const p = await tracked("sigterm", { fixture: "serve-routes.js" });
    const s = await pgbind(["serve", ENTRY, "--port", "0"], p.path, { PGBIND_DB_BINDING: BINDING }).ready;
    const file = path.join(p.path, "slow.txt");
    const inflight = fetch(`${s.url}/slow?file=${encodeURIComponent(file)}`);
    await sleep(100);
    s.child.kill("SIGTERM");
    const res = await inflight;
    assert.equal(await res.text(), "slow done");
    assert.equal(await s.exit, 0);
    assert.equal(await readFile(file, "utf8"), "late");
    assert.match(s.stderr(), /SIGTERM: finishing in-flight requests/);
  });
});

describe("pgbind serve with a real database", () => {
  let pg: TestPostgres;
  let dir: { path: string; remove: () => Promise<void> };
  before(async () => {
    [pg, dir] = await Promise.all([startTestPostgres(), makeTempDir("serve-pg")]);
  });
  after(async () => {
    await Promise.all([pg?.stop(), dir?.remove()]);
  });

  it("a postgres.js backend writes through POST and reads through GET via env.DB", async () => {
    const manifest = path.join(dir.path, "w7s.json");
    await writeFile(manifest, JSON.stringify(MANIFEST));
    const binding = localBinding({
      host: pg.host,
      port: pg.port,
      username: pg.user,
      password: pg.password,
      database: "postgres",
    });
    const entry = path.join(FIXTURES, "serve-postgres.js");
    const s = await pgbind(["serve", entry, "--manifest", manifest, "--port", "0"], dir.path, {
      PGBIND_DB_BINDING: binding,
    }).ready;
    for (const body of ["first note", "second note"]) {
      const res = await fetch(`${s.url}/notes`, { method: "POST", body });
      assert.equal(res.status, 201, await res.clone().text());
    }
    const notes = await (await fetch(`${s.url}/notes`)).json();
    assert.deepEqual(notes, [
      { id: 1, body: "first note" },
      { id: 2, body: "second note" },
    ]);
    // The open connection pool must not keep the process alive after a graceful stop.
    s.child.kill("SIGTERM");
    assert.equal(await s.exit, 0);
    assert.ok(!(s.stdout() + s.stderr()).includes(pg.password));
  });
});
