import { createHash } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { freePort, LocalPostgres, LocalPostgresError, randomPassword } from "@pgbind/local-postgres";
import pg from "pg";
import { ControlError } from "./errors.js";

/** The database holding the registry in the embedded PostgreSQL. */
export const EMBEDDED_DATABASE = "pgbind_control";

/** What the control plane remembers about its embedded PostgreSQL, in `<dataDir>/postgres.json` (0600). */
interface EmbeddedState {
  readonly version: 1;
  /** Chosen once, so the store URL gateways were given keeps working across restarts. */
  readonly port: number;
  readonly password: string;
}

export interface EmbeddedStore {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/pgbind_control`: holds a secret, never log it. */
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * Starts (initialising on first use) a durable PostgreSQL with its cluster in `<dataDir>/postgres`, on
 * the port remembered in `<dataDir>/postgres.json`, and creates the `pgbind_control` database.
 */
export async function startEmbeddedStore(
  dataDir: string,
  log: (event: string, fields: Record<string, unknown>) => void,
): Promise<EmbeddedStore> {
  const state = await loadOrCreateState(path.join(dataDir, "postgres.json"));
  const clusterDir = await clusterDirFor(dataDir);
  let server: LocalPostgres;
  try {
    server = await LocalPostgres.start({
      dataDir: clusterDir,
      password: state.password,
      port: state.port,
      onInitialise: () => log("store_initialising", { dataDir: clusterDir }),
    });
  } catch (error) {
    const hint =
      error instanceof LocalPostgresError && error.code === "PORT_IN_USE"
        ? `its port ${state.port} (kept in ${path.join(dataDir, "postgres.json")} so the store URL stays the same) is taken by another process; stop that process`
        : error instanceof LocalPostgresError && /postmaster\.pid/.test(error.message)
          ? `another control plane seems to be running with the data dir ${dataDir}; stop it first`
          : "see the cause";
    throw new ControlError("STORE_START_FAILED", `the embedded PostgreSQL did not start: ${hint}`, {
      cause: error,
    });
  }
  try {
    await ensureDatabase(server, state.password);
  } catch (error) {
    await server.stop();
    throw new ControlError("STORE_START_FAILED", `could not create the ${EMBEDDED_DATABASE} database`, {
      cause: error,
    });
  }
  return {
    url: `postgres://${server.user}:${encodeURIComponent(state.password)}@${server.host}:${server.port}/${EMBEDDED_DATABASE}`,
    stop: () => server.stop(),
  };
}

async function ensureDatabase(server: LocalPostgres, password: string): Promise<void> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.user,
    password,
    database: "postgres",
  });
  client.on("error", () => {});
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [
      EMBEDDED_DATABASE,
    ]);
    if (!rowCount) await client.query(`CREATE DATABASE ${EMBEDDED_DATABASE}`);
  } finally {
    await client.end();
  }
}

async function loadOrCreateState(file: string): Promise<EmbeddedState> {
  let raw: string | undefined;
  try {
    raw = await fs.readFile(file, "utf8");
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOENT") throw error;
  }
  if (raw === undefined) {
    const state: EmbeddedState = { version: 1, port: await freePort(), password: randomPassword() };
    await fs.writeFile(file, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    return state;
  }
  let parsed: Partial<EmbeddedState> | undefined;
  try {
    parsed = JSON.parse(raw) as Partial<EmbeddedState>;
  } catch {
    parsed = undefined;
  }
  if (
    parsed?.version !== 1 ||
    !Number.isInteger(parsed.port) ||
    typeof parsed.password !== "string" ||
    parsed.password === ""
  ) {
    throw new ControlError(
      "STORE_START_FAILED",
      `${file} is damaged; restore it from a backup (it holds the embedded PostgreSQL's port and password)`,
    );
  }
  return { version: 1, port: parsed.port as number, password: parsed.password };
}

/**
 * Where the cluster's files go: `<dataDir>/postgres`. As root the server runs as the `postgres`
 * account, which cannot enter a data dir under a 0700 directory (a container's /root); then the
 * cluster lives in `/var/lib/pgbind/clusters/<hash>` and `<dataDir>/postgres` links to it, as
 * `pgbind dev` does.
 */
async function clusterDirFor(dataDir: string): Promise<string> {
  const link = path.join(dataDir, "postgres");
  const existing = await fs.readlink(link).catch(() => undefined);
  if (existing !== undefined) return existing;
  if ((await fs.lstat(link).catch(() => undefined))?.isDirectory()) return link;
  if (process.getuid?.() !== 0 || (await traversable(dataDir))) return link;
  const base = "/var/lib/pgbind/clusters";
  await fs.mkdir(base, { recursive: true, mode: 0o755 });
  await fs.chmod("/var/lib/pgbind", 0o755);
  await fs.chmod(base, 0o755);
  const target = path.join(
    base,
    `control-${createHash("sha256").update(path.resolve(link)).digest("hex").slice(0, 16)}`,
  );
  await fs.symlink(target, link);
  return target;
}

async function traversable(dir: string): Promise<boolean> {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const stat = await fs.stat(current);
    if ((stat.mode & constants.S_IXOTH) === 0) return false;
    if (path.dirname(current) === current) return true;
  }
}

/**
 * The URL of the embedded store a control plane keeps in `dataDir`, for a gateway on the same machine
 * (`pgbind gateway --store local`). Holds a secret: never log it.
 * @throws ControlError `STORE_UNAVAILABLE` when no control plane has used `dataDir` yet.
 */
export async function localStoreUrl(dataDir: string): Promise<string> {
  const file = path.join(dataDir, "postgres.json");
  try {
    await fs.access(file, constants.R_OK);
  } catch {
    throw new ControlError(
      "STORE_UNAVAILABLE",
      `no embedded store in ${dataDir} (${file} is missing); start the control plane first with pgbind control --data-dir ${dataDir}`,
    );
  }
  const state = await loadOrCreateState(file);
  return `postgres://postgres:${encodeURIComponent(state.password)}@127.0.0.1:${state.port}/${EMBEDDED_DATABASE}`;
}
