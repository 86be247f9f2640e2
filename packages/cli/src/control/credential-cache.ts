import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { DEFAULT_CONTROL_DIR } from "./discovery.js";

/** A credential `pgbind serve`/`run` minted for a config, kept so restarts reuse it. */
export interface CachedCredential {
  readonly credentialId: string;
  readonly configId: string;
  readonly user: string;
  readonly password: string;
  /** The control plane that minted it. */
  readonly controlUrl: string;
  readonly createdAt: string;
}

/** `<cwd>/.pgbind/control/credentials/<configId>.json`. */
export function credentialCacheFile(cwd: string, configId: string): string {
  const safe = /^[A-Za-z0-9_-]+$/.test(configId)
    ? configId
    : encodeURIComponent(configId).replaceAll(".", "%2E");
  return path.join(path.resolve(cwd, DEFAULT_CONTROL_DIR), "credentials", `${safe}.json`);
}

/** The cached credential for `configId` from `controlUrl`, or undefined (none, unreadable, other control plane). */
export async function readCachedCredential(
  cwd: string,
  configId: string,
  controlUrl: string,
): Promise<CachedCredential | undefined> {
  let value: Partial<CachedCredential>;
  try {
    value = JSON.parse(
      await readFile(credentialCacheFile(cwd, configId), "utf8"),
    ) as Partial<CachedCredential>;
  } catch {
    return undefined;
  }
  const fields = ["credentialId", "configId", "user", "password", "controlUrl", "createdAt"] as const;
  if (!fields.every((f) => typeof value[f] === "string")) return undefined;
  const cached = value as CachedCredential;
  return cached.configId === configId && cached.controlUrl === controlUrl ? cached : undefined;
}

/** Writes the cache file with mode 0600 (its directory 0700), atomically. */
export async function writeCachedCredential(cwd: string, credential: CachedCredential): Promise<string> {
  const file = credentialCacheFile(cwd, credential.configId);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(credential, null, 2)}\n`, { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, file);
  return file;
}
