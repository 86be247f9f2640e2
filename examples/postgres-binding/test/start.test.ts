import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { freePort } from "@pgbind/local-postgres";
import { makeTempDir } from "../../../test-support/tmp.ts";

const run = promisify(execFile);
const example = path.resolve(import.meta.dirname, "..");
const root = path.resolve(example, "../..");
const PGBIND = path.join(root, "node_modules/.bin/pgbind");

/** `npm start` as a process (scripts/start.mjs), in a temp project so the developer's state is untouched. */
function start(cwd: string, ports: { app: number; gateway: number; control: number }) {
  const child = spawn(process.execPath, [path.join(root, "scripts/start.mjs")], {
    cwd,
    env: {
      PATH: process.env.PATH,
      PGBIND_START_APP_PORT: String(ports.app),
      PGBIND_START_GATEWAY_PORT: String(ports.gateway),
      PGBIND_START_CONTROL_PORT: String(ports.control),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const up = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes("[start] Ctrl-C stops everything.")) resolve();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`start.mjs exited with ${code}:\n${output}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { child, up, exited, output: () => output };
}

// The whole system as `npm start` runs it: control plane, gateway on the registry, the example by config ID.
describe("npm start: control plane, gateway and the example served by config ID", () => {
  let project: { path: string; remove: () => Promise<void> };
  let running: ReturnType<typeof start> | undefined;
  let ports: { app: number; gateway: number; control: number };

  before(async () => {
    await run(process.execPath, [path.join(example, "build.mjs")], { cwd: example });
    project = await makeTempDir("npm-start");
    ports = { app: await freePort(), gateway: await freePort(), control: await freePort() };
  });

  after(async () => {
    if (running && running.child.exitCode === null) running.child.kill("SIGKILL");
    await project.remove();
  });

  it("serves notes through the gateway, prints where everything is, and keeps the data across restarts", async () => {
    running = start(project.path, ports);
    await running.up;
    const printed = running.output();
    const id = /binding config postgres-binding-example: (pgb_[\w-]+)/.exec(printed)?.[1];
    assert.ok(id, printed);
    assert.match(printed, new RegExp(`example backend\\s+http://127\\.0\\.0\\.1:${ports.app}/`));
    assert.match(printed, new RegExp(`gateway\\s+postgres://127\\.0\\.0\\.1:${ports.gateway}/${id}`));
    assert.match(printed, /admin token\s+\S+\.pgbind\/control\/token/);
    const manifest = JSON.parse(await readFile(path.join(project.path, ".pgbind/start/w7s.json"), "utf8"));
    assert.deepEqual(manifest, { bindings: { hyperdrive: [{ binding: "DB", id }] } });

    const app = `http://127.0.0.1:${ports.app}`;
    const created = await fetch(`${app}/notes`, { method: "POST", body: JSON.stringify({ body: "kept" }) });
    assert.equal(created.status, 201, await created.clone().text());
    // The backend's env.DB points at the gateway with a minted credential, never at the origin.
    const list = await run(PGBIND, ["credentials", "list", id, "--json"], { cwd: project.path });
    assert.equal((JSON.parse(list.stdout) as { credentials: unknown[] }).credentials.length, 1);

    running.child.kill("SIGINT");
    assert.equal(await running.exited, 0);

    // A restart finds the same config by name, reuses the cached credential and still has the note.
    running = start(project.path, ports);
    await running.up;
    assert.match(running.output(), new RegExp(`binding config postgres-binding-example: ${id}`));
    const notes = (await (await fetch(`${app}/notes`)).json()) as { notes: { body: string }[] };
    assert.deepEqual(
      notes.notes.map((n) => n.body),
      ["kept"],
    );
    const again = await run(PGBIND, ["credentials", "list", id, "--json"], { cwd: project.path });
    assert.equal((JSON.parse(again.stdout) as { credentials: unknown[] }).credentials.length, 1);
    running.child.kill("SIGINT");
    assert.equal(await running.exited, 0);
  });
});
