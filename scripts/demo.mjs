#!/usr/bin/env node
// `npm start`: a local PostgreSQL (no Docker, no system install), a binding injected the way a
// platform does it, and a query through each driver using what @pgbind/sdk resolves.
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { LocalPostgres, randomPassword } from "@pgbind/local-postgres";
import { getPostgresConnection, pgConfig, postgresOptions } from "@pgbind/sdk";
import pg from "pg";
import postgres from "postgres";

const dir = await mkdtemp(path.join(os.tmpdir(), "pgbind-demo-"));
await chmod(dir, 0o755); // as root the server runs as `postgres`, which must reach its data dir
const password = randomPassword();
const started = performance.now();
console.log("Starting a local PostgreSQL …");
const server = await LocalPostgres.start({ dataDir: path.join(dir, "data"), password, durable: false });
try {
  console.log(
    `PostgreSQL ${server.version} is up on ${server.host}:${server.port} (${Math.round(performance.now() - started)} ms)\n`,
  );

  // What `pgbind dev` (and every platform) does: inject the binding into the workload's environment.
  process.env.PGBIND_DB_BINDING = JSON.stringify({
    service: "local",
    host: server.host,
    port: server.port,
    database: "postgres",
    username: server.user,
    password,
  });

  // What the workload does.
  const conn = await getPostgresConnection("db");
  console.log('getPostgresConnection("db") →', conn, "\n");

  const client = new pg.Client(pgConfig(conn));
  await client.connect();
  const { rows } = await client.query("select now() as now, current_user as user, version() as version");
  await client.end();
  console.log("pg         →", rows[0]);

  const sql = postgres(postgresOptions(conn));
  const [row] = await sql`select 1 + 1 as two, current_database() as database`;
  await sql.end();
  console.log("postgres.js →", { ...row });
} finally {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
console.log("\nStopped. Next: `npm test` runs every test; the README shows the SDK with your own driver.");
