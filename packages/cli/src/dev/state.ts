import { createHash } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { freePort, randomPassword } from "@pgbind/local-postgres";
import { CliError } from "../errors.js";

/** What `pgbind dev` remembers about a project's local database, in `.pgbind/state.json`. */
export interface DevState {
  readonly version: 1;
  /** Chosen once, so connection strings stay the same across restarts. */
  readonly port: number;
  /** The `postgres` superuser's password, chosen once. The file is 0600 and ignored by git. */
  readonly password: string;
}

/** Paths of a project's local-database state. */
export interface DevPaths {
  /** `<project>/.pgbind` */
  readonly root: string;
  readonly stateFile: string;
  /** Where the cluster lives: `<project>/.pgbind/data`, possibly a link to a reachable location (see {@link dataDirFor}). */
  readonly dataLink: string;
  /** A libpq password file for the banner's psql line, so no password is printed. */
  readonly pgpassFile: string;
}

export function devPaths(projectDir: string): DevPaths {
  const root = path.join(projectDir, ".pgbind");
  return {
    root,
    stateFile: path.join(root, "state.json"),
    dataLink: path.join(root, "data"),
    pgpassFile: path.join(root, "pgpass"),
  };
}

/** Loads the state, creating it (free port, random password) on first use or after `--fresh`. */
export async function loadOrCreateState(paths: DevPaths): Promise<{ state: DevState; created: boolean }> {
  await fs.mkdir(paths.root, { recursive: true });
  // Keeps the password and the data out of commits even if the project's .gitignore forgets .pgbind/.
  await fs.writeFile(path.join(paths.root, ".gitignore"), "*\n");
  let raw: string;
  try {
    raw = await fs.readFile(paths.stateFile, "utf8");
  } catch {
    const state: DevState = { version: 1, port: await freePort(), password: randomPassword() };
    await fs.writeFile(paths.stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    return { state, created: true };
  }
  const parsed = safeParse(raw);
  if (
    parsed === undefined ||
    parsed.version !== 1 ||
    !Number.isInteger(parsed.port) ||
    typeof parsed.password !== "string" ||
    parsed.password === ""
  ) {
    throw new CliError(
      "DATABASE_START_FAILED",
      `${paths.stateFile} is damaged; run \`pgbind dev --fresh\` to start over (this deletes the local data)`,
    );
  }
  return { state: { version: 1, port: parsed.port as number, password: parsed.password }, created: false };
}

function safeParse(raw: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(raw);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Deletes the project's local database and state (`--fresh`). */
export async function removeState(paths: DevPaths): Promise<void> {
  const target = await fs.readlink(paths.dataLink).catch(() => undefined);
  if (target !== undefined) await fs.rm(target, { recursive: true, force: true });
  await fs.rm(paths.root, { recursive: true, force: true });
}

/**
 * Where the cluster's files go. Normally `.pgbind/data` itself. As root the server runs as the
 * `postgres` account, which cannot enter a project under a 0700 directory (a container's /root):
 * then the cluster lives in `/var/lib/pgbind/clusters/<hash of the project path>` and
 * `.pgbind/data` is a symbolic link to it.
 */
export async function dataDirFor(paths: DevPaths): Promise<string> {
  const existing = await fs.readlink(paths.dataLink).catch(() => undefined);
  if (existing !== undefined) return existing;
  if (process.getuid?.() !== 0 || (await traversable(paths.root))) return paths.dataLink;
  const base = "/var/lib/pgbind/clusters";
  await fs.mkdir(base, { recursive: true, mode: 0o755 });
  await fs.chmod("/var/lib/pgbind", 0o755);
  await fs.chmod(base, 0o755);
  const target = path.join(
    base,
    createHash("sha256").update(path.resolve(paths.root)).digest("hex").slice(0, 16),
  );
  await fs.symlink(target, paths.dataLink);
  return target;
}

async function traversable(dir: string): Promise<boolean> {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const stat = await fs.stat(current);
    if ((stat.mode & constants.S_IXOTH) === 0) return false;
    if (path.dirname(current) === current) return true;
  }
}

/** Writes a libpq password file (mode 0600) for the banner's psql command line. */
export async function writePgpass(paths: DevPaths, state: DevState, host: string): Promise<void> {
  const pgpassField = (value: string) => value.replaceAll("\\", "\\\\").replaceAll(":", "\\:");
  await fs.writeFile(
    paths.pgpassFile,
    `${pgpassField(host)}:${state.port}:*:postgres:${pgpassField(state.password)}\n`,
    {
      mode: 0o600,
    },
  );
  await fs.chmod(paths.pgpassFile, 0o600);
}
