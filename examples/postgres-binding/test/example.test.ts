import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { copyFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { makeTempDir } from "../../../test-support/tmp.ts";

const run = promisify(execFile);
const example = path.resolve(import.meta.dirname, "..");
const root = path.resolve(example, "../..");
const PGBIND = path.join(root, "node_modules/.bin/pgbind");

// The whole local flow as a developer runs it: build the backend, then `pgbind dev --serve`.
describe("examples/postgres-binding under pgbind dev --serve", () => {
  let project: { path: string; remove: () => Promise<void> };
  let child: ChildProcess;
  let url: string;
  let output = "";

  before(async () => {
    await run(process.execPath, [path.join(example, "build.mjs")], { cwd: example });
    const check = await run(PGBIND, ["check", example], { cwd: example });
    assert.match(check.stdout, /ok/);
    // A copy of the manifest in a temp project, so the test's database is not the one `npm start` uses.
    project = await makeTempDir("example");
    await copyFile(path.join(example, "w7s.json"), path.join(project.path, "w7s.json"));
    child = spawn(PGBIND, ["dev", "--serve", path.join(example, "dist/server/index.js"), "--port", "0"], {
      cwd: project.path,
      env: { PATH: process.env.PATH },
      stdio: ["ignore", "pipe", "pipe"],
    });
    url = await new Promise<string>((resolve, reject) => {
      const onData = (d: Buffer) => {
        output += d.toString();
        const match = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
        if (match?.[1]) resolve(match[1]);
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("exit", (code) => reject(new Error(`pgbind dev exited with ${code}:\n${output}`)));
    });
  });

  after(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    await project.remove();
  });

  it("answers select now()", async () => {
    const res = await fetch(`${url}/now`);
    assert.equal(res.status, 200);
    const { now } = (await res.json()) as { now: string };
    assert.ok(Math.abs(Date.parse(now) - Date.now()) < 60_000);
  });

  it("writes and reads notes in the local database", async () => {
    const created = await fetch(`${url}/notes`, {
      method: "POST",
      body: JSON.stringify({ body: "hello, pgbind" }),
    });
    assert.equal(created.status, 201);
    const { notes } = (await (await fetch(`${url}/notes`)).json()) as { notes: { body: string }[] };
    assert.ok(notes.some((n) => n.body === "hello, pgbind"));
    const bad = await fetch(`${url}/notes`, { method: "POST", body: "not json" });
    assert.equal(bad.status, 400);
  });

  it("stops the server and PostgreSQL on SIGTERM with exit code 0", async () => {
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0, output);
  });
});
