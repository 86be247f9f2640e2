import { readFile } from "node:fs/promises";
import path from "node:path";
import { CliError } from "../errors.js";
import type { CliIo } from "../io.js";

/** Where `pgbind control` keeps its state by default, relative to the working directory. */
export const DEFAULT_CONTROL_DIR = path.join(".pgbind", "control");
/** The discovery file `pgbind control` writes into its data dir: `{"url", "pid", "tokenFile"}`. */
export const CONTROL_FILE = "control.json";

/** A control plane to talk to, and where each part of it came from (for error messages). */
export interface ControlTarget {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:8788`. */
  readonly url: string;
  /** `--control-url`, `PGBIND_CONTROL_URL` or the path of the control.json it was read from. */
  readonly urlSource: string;
  /** The bearer token; never printed. */
  readonly token: string | undefined;
  /** `--token`, `PGBIND_TOKEN`, the token file's path, or a sentence saying there is none. */
  readonly tokenSource: string;
  /** Extra advice when the control plane does not answer (e.g. the pid in control.json is gone). */
  readonly unreachableHint?: string;
}

/** `--control-url` and `--token` as given on the command line. */
export interface ControlFlags {
  readonly controlUrl?: string | undefined;
  readonly token?: string | undefined;
}

interface ControlFile {
  readonly file: string;
  readonly url: string;
  readonly pid: number | undefined;
  readonly tokenFile: string | undefined;
}

const NO_TOKEN = "no --token, no PGBIND_TOKEN, no token file for this URL";

/**
 * Finds the control plane: `--control-url`/`--token`, then `PGBIND_CONTROL_URL`/`PGBIND_TOKEN`, then
 * `<cwd>/.pgbind/control/control.json` and its token file. The token file named by control.json is
 * only used for the URL in that same file, so a local token is never sent to another server.
 * Returns undefined when nothing is configured.
 * @throws CliError `USAGE` for a URL that is not http(s), `CONTROL_NOT_CONFIGURED` for an unreadable control.json.
 */
export async function discoverControl(flags: ControlFlags, io: CliIo): Promise<ControlTarget | undefined> {
  const envUrl = nonEmpty(io.env.PGBIND_CONTROL_URL);
  const envToken = nonEmpty(io.env.PGBIND_TOKEN);
  const explicit =
    flags.controlUrl !== undefined
      ? { url: normalizeUrl(flags.controlUrl, "--control-url"), source: "--control-url" }
      : envUrl !== undefined
        ? { url: normalizeUrl(envUrl, "PGBIND_CONTROL_URL"), source: "PGBIND_CONTROL_URL" }
        : undefined;
  const local = await readControlFile(io.cwd);

  if (explicit !== undefined) {
    if (flags.token !== undefined) return target(explicit.url, explicit.source, flags.token, "--token");
    if (envToken !== undefined) return target(explicit.url, explicit.source, envToken, "PGBIND_TOKEN");
    if (local !== undefined && local.url === explicit.url) return fromFile(local, explicit.source);
    return target(explicit.url, explicit.source, undefined, NO_TOKEN);
  }
  if (local === undefined) {
    if (flags.token !== undefined)
      throw new CliError(
        "CONTROL_NOT_CONFIGURED",
        "--token was given but no control plane URL: pass --control-url <url> or set PGBIND_CONTROL_URL",
      );
    return undefined;
  }
  if (flags.token !== undefined)
    return withHint(target(local.url, local.file, flags.token, "--token"), local);
  if (envToken !== undefined) return withHint(target(local.url, local.file, envToken, "PGBIND_TOKEN"), local);
  return fromFile(local, local.file);
}

/** {@link discoverControl}, failing when nothing is configured. */
export async function requireControl(flags: ControlFlags, io: CliIo): Promise<ControlTarget> {
  const found = await discoverControl(flags, io);
  if (found !== undefined) return found;
  throw new CliError(
    "CONTROL_NOT_CONFIGURED",
    `no control plane configured: pass --control-url <url> (and --token, or set PGBIND_TOKEN), set PGBIND_CONTROL_URL, or start one here with \`pgbind control\` (it writes ${path.join(DEFAULT_CONTROL_DIR, CONTROL_FILE)}, found automatically from this directory)`,
  );
}

function target(
  url: string,
  urlSource: string,
  token: string | undefined,
  tokenSource: string,
): ControlTarget {
  return { url, urlSource, token: token?.trim() || undefined, tokenSource };
}

async function fromFile(local: ControlFile, urlSource: string): Promise<ControlTarget> {
  if (local.tokenFile === undefined)
    return withHint(target(local.url, urlSource, undefined, `${local.file} (it names no tokenFile)`), local);
  let token: string | undefined;
  let tokenSource = local.tokenFile;
  try {
    token = (await readFile(local.tokenFile, "utf8")).trim() || undefined;
    if (token === undefined) tokenSource = `${local.tokenFile} (empty)`;
  } catch (error) {
    tokenSource = `${local.tokenFile} (cannot be read: ${(error as NodeJS.ErrnoException).code ?? "error"})`;
  }
  return withHint(target(local.url, urlSource, token, tokenSource), local);
}

function withHint(found: ControlTarget, local: ControlFile): ControlTarget {
  if (local.pid === undefined || pidAlive(local.pid)) return found;
  return {
    ...found,
    unreachableHint: `${local.file} was written by pid ${local.pid}, which is no longer running; start it again with \`pgbind control\``,
  };
}

async function readControlFile(cwd: string): Promise<ControlFile | undefined> {
  const dir = path.resolve(cwd, DEFAULT_CONTROL_DIR);
  const file = path.join(dir, CONTROL_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CliError(
      "CONTROL_NOT_CONFIGURED",
      `${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"}); pass --control-url or set PGBIND_CONTROL_URL instead`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const record = typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  const url = nonEmpty(record.url);
  if (url === undefined)
    throw new CliError(
      "CONTROL_NOT_CONFIGURED",
      `${file} is not a control plane discovery file (expected {"url", "pid", "tokenFile"}); restart \`pgbind control\`, or pass --control-url`,
    );
  const tokenFile = nonEmpty(record.tokenFile);
  return {
    file,
    url: normalizeUrl(url, file),
    pid: typeof record.pid === "number" && Number.isInteger(record.pid) ? record.pid : undefined,
    tokenFile: tokenFile === undefined ? undefined : path.resolve(dir, tokenFile),
  };
}

/** `http(s)://host:port[/prefix]` without a trailing slash. @throws CliError USAGE naming `what`. */
export function normalizeUrl(text: string, what: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError("USAGE", `${what}: not a URL; expected e.g. http://127.0.0.1:8788`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new CliError(
      "USAGE",
      `${what}: scheme "${url.protocol}" is not http: or https: (e.g. http://127.0.0.1:8788)`,
    );
  if (url.username !== "" || url.password !== "")
    throw new CliError(
      "USAGE",
      `${what}: must not contain credentials; pass the token with --token or PGBIND_TOKEN`,
    );
  url.search = "";
  url.hash = "";
  return url.toString().replace(/\/+$/, "");
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}
