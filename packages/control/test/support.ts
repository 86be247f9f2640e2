import { randomBytes } from "node:crypto";
import pg from "pg";
import type { TestPostgres } from "../../../test-support/postgres.ts";
import { type OriginProbe, Registry } from "../src/index.ts";

let databases = 0;

/** A fresh database on the test server (one per test, so tests do not see each other's configs). */
export async function createStore(server: TestPostgres, options: { tls?: boolean } = {}): Promise<string> {
  const name = `store_${process.pid}_${++databases}`;
  const client = new pg.Client({
    ...adminConfig(server),
    ...(options.tls ? { ssl: { rejectUnauthorized: false } } : {}),
  });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  // node-postgres's own sslmode: TLS without verification (the test server's certificate is private).
  return `${storeUrl(server, name)}${options.tls ? "?sslmode=no-verify" : ""}`;
}

export function storeUrl(server: TestPostgres, database: string): string {
  return `postgres://${server.user}:${encodeURIComponent(server.password)}@${server.host}:${server.port}/${database}`;
}

export function adminConfig(server: TestPostgres, database = "postgres"): pg.ClientConfig {
  return { host: server.host, port: server.port, user: server.user, password: server.password, database };
}

export function testKey(): Buffer {
  return randomBytes(32);
}

/** A migrated registry over its own pool; `close` ends the pool. */
export async function openRegistry(
  url: string,
  masterKey: Buffer,
  probe: OriginProbe | false = false,
): Promise<{ registry: Registry; pool: pg.Pool; close: () => Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on("error", () => {});
  const registry = new Registry({ pool, masterKey, probe, storeName: "test-store" });
  await registry.migrate();
  await registry.verifyMasterKey({ record: true });
  return { registry, pool, close: () => pool.end() };
}

/** A create-body origin pointing at the test server's `postgres` database. */
export function originOf(server: TestPostgres) {
  return {
    host: server.host,
    port: server.port,
    database: "postgres",
    user: server.user,
    password: server.password,
    sslmode: "disable" as const,
  };
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 1_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}
