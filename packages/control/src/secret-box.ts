import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { ControlError } from "./errors.js";

/** The environment variable holding the master key. */
export const MASTER_KEY_ENV = "PGBIND_MASTER_KEY";
/** The key file's name inside the data directory. */
export const MASTER_KEY_FILE = "master.key";

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
// Format version 1: version(1) | iv(12) | tag(16) | ciphertext. A new algorithm gets a new version byte.
const FORMAT_V1 = 1;
const VALID_FORMS = `32 bytes, written as 44 base64 characters or 64 hex characters (e.g. the output of \`openssl rand -base64 32\`)`;

/**
 * Authenticated encryption of secrets at rest (AES-256-GCM, random 96-bit IV). The associated data binds
 * a ciphertext to its context (the config id), so a sealed value copied into another row does not open.
 */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== KEY_BYTES) {
      throw new ControlError(
        "MASTER_KEY_INVALID",
        `the master key must be ${VALID_FORMS}; got ${key.length} bytes`,
      );
    }
    this.#key = Buffer.from(key);
  }

  /** Encrypts `plaintext` bound to `context`. */
  seal(plaintext: string, context: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return Buffer.concat([Buffer.of(FORMAT_V1), iv, cipher.getAuthTag(), body]);
  }

  /**
   * Decrypts a value sealed for `context`. Throws `MASTER_KEY_MISMATCH` when the key is not the one it
   * was sealed with, or the value or its context was altered (GCM cannot tell these apart).
   */
  open(sealed: Uint8Array, context: string, what: string): string {
    const data = Buffer.from(sealed);
    if (data.length < 1 + IV_BYTES + TAG_BYTES || data[0] !== FORMAT_V1) {
      throw new ControlError(
        "MASTER_KEY_MISMATCH",
        `${what} is not in a format this pgbind can read (format ${data[0] ?? "none"}); was it written by a newer pgbind?`,
      );
    }
    const iv = data.subarray(1, 1 + IV_BYTES);
    const tag = data.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, iv);
      decipher.setAAD(Buffer.from(context, "utf8"));
      decipher.setAuthTag(tag);
      return Buffer.concat([
        decipher.update(data.subarray(1 + IV_BYTES + TAG_BYTES)),
        decipher.final(),
      ]).toString("utf8");
    } catch {
      throw new ControlError(
        "MASTER_KEY_MISMATCH",
        `cannot decrypt ${what}: the master key is not the one it was encrypted with (or the stored value was altered); start with the original ${MASTER_KEY_ENV} or ${MASTER_KEY_FILE}`,
      );
    }
  }
}

/**
 * Parses a master key written as base64 (standard or URL-safe, 32 bytes) or 64 hex characters.
 * `source` names where it came from, for the error; the key itself is never put in a message.
 */
export function parseMasterKey(text: string, source: string): Buffer {
  const value = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(value)) key = Buffer.from(value, "hex");
  else if (/^[A-Za-z0-9+/_-]{42,43}={0,2}$/.test(value)) {
    const decoded = Buffer.from(value.replaceAll("-", "+").replaceAll("_", "/"), "base64");
    if (decoded.length === KEY_BYTES) key = decoded;
  }
  if (!key) {
    throw new ControlError(
      "MASTER_KEY_INVALID",
      `${source} is not a valid master key: it must be ${VALID_FORMS} (it has ${value.length} characters)`,
    );
  }
  return key;
}

/** Where {@link loadMasterKey} looks, in order: `masterKey`, `PGBIND_MASTER_KEY` in `env`, `<dataDir>/master.key`. */
export interface LoadMasterKeyOptions {
  /** A key given directly (wins over everything else). */
  readonly masterKey?: Uint8Array;
  /** Defaults to `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Directory holding `master.key`. */
  readonly dataDir?: string;
  /** Create `<dataDir>/master.key` (mode 0600, random) when no key is found; default false. */
  readonly create?: boolean;
}

/**
 * Finds the master key. A key file must not be accessible by group or others (it is refused
 * otherwise). With `create`, a missing key file is generated once (exclusive create, so concurrent
 * starts agree on one key).
 */
export async function loadMasterKey(options: LoadMasterKeyOptions = {}): Promise<Buffer> {
  if (options.masterKey !== undefined) {
    if (options.masterKey.length !== KEY_BYTES) {
      throw new ControlError(
        "MASTER_KEY_INVALID",
        `the masterKey option must be 32 bytes; got ${options.masterKey.length}`,
      );
    }
    return Buffer.from(options.masterKey);
  }
  const fromEnv = (options.env ?? process.env)[MASTER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return parseMasterKey(fromEnv, MASTER_KEY_ENV);
  if (options.dataDir === undefined) {
    throw new ControlError("MASTER_KEY_MISSING", `no master key: set ${MASTER_KEY_ENV} to ${VALID_FORMS}`);
  }
  const file = path.join(options.dataDir, MASTER_KEY_FILE);
  const existing = await readKeyFile(file);
  if (existing) return existing;
  if (!options.create) {
    throw new ControlError(
      "MASTER_KEY_MISSING",
      `no master key: set ${MASTER_KEY_ENV} or write ${file} (mode 0600), either as ${VALID_FORMS}; use the key the store's secrets were encrypted with`,
    );
  }
  await fs.mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  try {
    await fs.writeFile(file, `${key.toString("base64")}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    // Another instance created it first: use theirs, so both agree.
    if ((error as { code?: string }).code === "EEXIST") {
      const theirs = await readKeyFile(file);
      if (theirs) return theirs;
    }
    throw new ControlError(
      "MASTER_KEY_INVALID",
      `cannot create the master key file ${file}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return key;
}

async function readKeyFile(file: string): Promise<Buffer | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT") return undefined;
    throw new ControlError(
      "MASTER_KEY_INVALID",
      `cannot read the master key file ${file} (${code === "ELOOP" ? "it is a symbolic link; use a regular file" : (code ?? (error as Error).message)})`,
      { cause: error },
    );
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new ControlError("MASTER_KEY_INVALID", `the master key file ${file} is not a regular file`);
    }
    if ((stat.mode & 0o077) !== 0) {
      throw new ControlError(
        "MASTER_KEY_INVALID",
        `the master key file ${file} is accessible by group or others (mode ${(stat.mode & 0o777).toString(8).padStart(4, "0")}); run \`chmod 600 ${file}\``,
      );
    }
    // An empty file is the other instance still writing it (exclusive create, then write).
    let text = await handle.readFile("utf8");
    for (let i = 0; text === "" && i < 20; i++) {
      await new Promise((r) => setTimeout(r, 25));
      text = await handle.readFile({ encoding: "utf8" });
    }
    return parseMasterKey(text, file);
  } finally {
    await handle.close();
  }
}
