#!/usr/bin/env node
// `npm start`: the whole system on one machine, on embedded defaults.
//
//   1. the control plane (`pgbind control`), which starts its embedded PostgreSQL (.pgbind/control);
//   2. the gateway (`pgbind gateway --store local`), fed live by the control plane's registry;
//   3. an origin database for the example (a role and database in the same embedded PostgreSQL);
//   4. the example's binding config, created through `pgbind configs` (or found by name on later starts);
//   5. the example backend (`pgbind serve`), whose w7s.json names that config by ID: serve mints a
//      gateway credential and hands the backend env.DB pointing at the gateway.
//
// Ctrl-C (or SIGTERM) stops everything in reverse order. Env: PGBIND_START_APP_PORT (8787),
// PGBIND_START_GATEWAY_PORT (6432), PGBIND_START_CONTROL_PORT (8788).
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const pgbind = path.join(root, "node_modules/.bin/pgbind");
// State lives under the working directory (npm start: the repository), like pgbind dev's.
const stateDir = path.join(process.cwd(), ".pgbind");
const controlDir = path.join(stateDir, "control");
const startDir = path.join(stateDir, "start");
const CONFIG_NAME = "postgres-binding-example";
const ports = {
  app: Number(process.env.PGBIND_START_APP_PORT ?? 8787),
  gateway: Number(process.env.PGBIND_START_GATEWAY_PORT ?? 6432),
  control: Number(process.env.PGBIND_START_CONTROL_PORT ?? 8788),
};
const children = [];
let stopping = false;

function say(line) {
  process.stdout.write(`[start] ${line}\n`);
}

/** Spawns a long-running pgbind command; its output is prefixed; it ending early stops everything. */
function service(name, args, { readyWhen }) {
  const child = spawn(pgbind, args, {
    cwd: process.cwd(),
    stdio: ["ignore", "pipe", "pipe"],
    env: process.env,
  });
  children.push({ name, child });
  let buffer = "";
  return new Promise((resolve, reject) => {
    const onLine = (stream) => (data) => {
      const text = data.toString();
      for (const line of text.split("\n")) if (line) stream.write(`[${name}] ${line}\n`);
      buffer += text;
      if (readyWhen.test(buffer)) resolve(child);
    };
    child.stdout.on("data", onLine(process.stdout));
    child.stderr.on("data", onLine(process.stderr));
    child.once("exit", (code, signal) => {
      reject(new Error(`${name} exited (${signal ?? code}) before it was ready`));
      if (!stopping) {
        process.stderr.write(`[start] ${name} exited (${signal ?? code}); stopping everything\n`);
        void stopAll(1);
      }
    });
  });
}

async function stopAll(code) {
  if (stopping) return;
  stopping = true;
  for (const { child } of children.reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill("SIGTERM");
    await new Promise((resolve) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve();
      }, 15_000);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  process.exit(code);
}

/** Runs a pgbind verb to completion; returns stdout, or throws with its stderr. */
function verb(args, { env = {}, input } = {}) {
  const result = spawnSync(pgbind, args, {
    cwd: process.cwd(),
    encoding: "utf8",
    env: { ...process.env, ...env },
    input,
  });
  if (result.status !== 0) {
    const error = new Error(
      `pgbind ${args[0]} ${args[1] ?? ""}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
    error.status = result.status;
    throw error;
  }
  return result.stdout;
}

/** The example's own role and database in the embedded PostgreSQL, with a password kept in .pgbind/start. */
async function ensureExampleOrigin() {
  const { localStoreUrl } = await import("@pgbind/control");
  const { default: pg } = await import("pg");
  const file = path.join(startDir, "example-origin.json");
  const saved = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
  const password = saved?.password ?? randomBytes(18).toString("base64url");
  const admin = new pg.Client({
    connectionString: (await localStoreUrl(controlDir)).replace(/\/[^/]*$/, "/postgres"),
  });
  await admin.connect();
  try {
    const role = await admin.query("select 1 from pg_roles where rolname = 'example_app'");
    // The password is a random base64url string: safe to inline, and never logged.
    const verb = role.rowCount ? "alter" : "create";
    await admin.query(`${verb} role example_app login password '${password}'`);
    const db = await admin.query("select 1 from pg_database where datname = 'example'");
    if (!db.rowCount) await admin.query("create database example owner example_app");
  } finally {
    await admin.end();
  }
  mkdirSync(startDir, { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify({ password }, null, 2)}\n`, { mode: 0o600 });
  const { port } = new URL(await localStoreUrl(controlDir));
  return { host: "127.0.0.1", port: Number(port), database: "example", user: "example_app", password };
}

/** The example's binding config: found by name, or created; its origin password kept current. */
function ensureConfig(origin) {
  const env = { PGBIND_ORIGIN_PASSWORD: origin.password };
  const { configs } = JSON.parse(verb(["configs", "list", "--json"]));
  const existing = configs.find((c) => c.name === CONFIG_NAME);
  const flags = [
    "--origin-host",
    origin.host,
    "--origin-port",
    String(origin.port),
    "--database",
    origin.database,
    "--origin-user",
    origin.user,
    "--sslmode",
    "disable",
    "--json",
  ];
  if (existing) {
    verb(["configs", "update", existing.id, ...flags], { env });
    return existing.id;
  }
  const created = JSON.parse(verb(["configs", "create", CONFIG_NAME, ...flags], { env }));
  return created.config.id;
}

/** Waits until the backend answers through the gateway (which learns a fresh credential within moments). */
async function firstRequest(url) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const response = await fetch(url).catch((error) => error);
    if (response instanceof Response && response.ok) return;
    if (Date.now() > deadline) {
      const detail =
        response instanceof Response ? `HTTP ${response.status}: ${await response.text()}` : response.message;
      throw new Error(`the example backend does not answer ${url}: ${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function main() {
  process.on("SIGINT", () => void stopAll(0));
  process.on("SIGTERM", () => void stopAll(0));
  const gatewayUrl = `postgres://127.0.0.1:${ports.gateway}?sslmode=disable`;
  say("starting the control plane (first start initialises its embedded PostgreSQL)…");
  await service(
    "control",
    [
      "control",
      "--data-dir",
      controlDir,
      "--listen",
      `127.0.0.1:${ports.control}`,
      "--gateway-url",
      gatewayUrl,
    ],
    { readyWhen: /pgbind control listening on/ },
  );
  say("starting the gateway on the registry…");
  await service(
    "gateway",
    ["gateway", "--store", "local", "--control-dir", controlDir, "--listen", `127.0.0.1:${ports.gateway}`],
    { readyWhen: /pgbind gateway listening on/ },
  );
  const origin = await ensureExampleOrigin();
  const id = ensureConfig(origin);
  const manifest = path.join(startDir, "w7s.json");
  writeFileSync(
    manifest,
    `${JSON.stringify({ bindings: { hyperdrive: [{ binding: "DB", id }] } }, null, 2)}\n`,
  );
  say(`binding config ${CONFIG_NAME}: ${id} (manifest ${path.relative(process.cwd(), manifest)})`);
  await service(
    "example",
    [
      "serve",
      path.join(root, "examples/postgres-binding/dist/server/index.js"),
      "--manifest",
      manifest,
      "--port",
      String(ports.app),
    ],
    { readyWhen: /Serving .* on http:\/\// },
  );
  await firstRequest(`http://127.0.0.1:${ports.app}/now`);
  const control = JSON.parse(readFileSync(path.join(controlDir, "control.json"), "utf8"));
  say("everything is up:");
  say(`  example backend   http://127.0.0.1:${ports.app}/  (try /now and POST /notes)`);
  say(
    `  gateway           postgres://127.0.0.1:${ports.gateway}/${id}  (credentials minted by pgbind serve)`,
  );
  say(`  control plane     ${control.url}/v1  (OpenAPI at /v1/openapi.json)`);
  say(`  admin token       ${control.tokenFile}  (pgbind configs list finds it from this directory)`);
  say("Ctrl-C stops everything.");
}

main().catch((error) => {
  process.stderr.write(`[start] ${error.message}\n`);
  void stopAll(1);
});
