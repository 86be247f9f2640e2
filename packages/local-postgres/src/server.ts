import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { LocalPostgresError } from "./errors.js";
import { type PostgresRuntime, resolveRuntime, traversableByOthers } from "./runtime.js";

/** How to run one local PostgreSQL cluster. */
export interface LocalPostgresOptions {
  /** Cluster directory; created and initialised (initdb) when empty, reused otherwise. */
  readonly dataDir: string;
  /** Superuser password, set at initdb. Authentication is always SCRAM-SHA-256. */
  readonly password: string;
  /** Superuser name, default `postgres`. */
  readonly user?: string;
  /** TCP port; 0 or absent picks a free one. */
  readonly port?: number;
  /** `listen_addresses`, default `127.0.0.1`. */
  readonly listenAddresses?: string;
  /** Serve TLS with this PEM certificate and key; with `required`, plaintext connections are refused. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly required?: boolean };
  /** Extra server settings, passed as `-c name=value`. */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
  /** false trades crash safety for speed (fsync off, initdb --no-sync): for tests. Default true. */
  readonly durable?: boolean;
  /** Give up starting after this long, default 30 s. */
  readonly startTimeoutMs?: number;
  /** Called before initdb runs, i.e. only when a new cluster is created (it takes a second or two). */
  readonly onInitialise?: () => void;
  /** Receives server log lines. */
  readonly onLog?: (line: string) => void;
}

const READY_LINE = "database system is ready to accept connections";
const LOG_TAIL_LINES = 40;

/** A running PostgreSQL server started from the embedded binaries. Stop it with {@link LocalPostgres.stop}. */
export class LocalPostgres {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly dataDir: string;
  readonly version: string;
  /** True when this start ran initdb (a new cluster). */
  readonly created: boolean;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #killOnExit: () => void;

  private constructor(init: {
    host: string;
    port: number;
    user: string;
    dataDir: string;
    version: string;
    created: boolean;
    child: ChildProcess;
    exited: Promise<void>;
  }) {
    this.host = init.host;
    this.port = init.port;
    this.user = init.user;
    this.dataDir = init.dataDir;
    this.version = init.version;
    this.created = init.created;
    this.#child = init.child;
    this.#exited = init.exited;
    // Never leave a server behind when the owning process exits without calling stop().
    this.#killOnExit = () => {
      if (this.#child.exitCode === null) this.#child.kill("SIGQUIT");
    };
    process.once("exit", this.#killOnExit);
  }

  /** Initialises the cluster if needed and starts the server; resolves once it accepts connections. */
  static async start(options: LocalPostgresOptions): Promise<LocalPostgres> {
    if (!options.password) {
      throw new LocalPostgresError("INVALID_OPTIONS", "options.password must be a non-empty string");
    }
    const runtime = await resolveRuntime();
    const user = options.user ?? "postgres";
    const dataDir = path.resolve(options.dataDir);
    await prepareDataDir(dataDir, runtime);
    const created = !(await isInitialised(dataDir));
    if (created) {
      options.onInitialise?.();
      await initdb(runtime, dataDir, user, options);
    }
    await writeHba(dataDir, runtime, options.tls?.required === true);
    const tlsSettings = options.tls ? await writeTls(dataDir, runtime, options.tls) : {};

    const explicitPort = options.port !== undefined && options.port !== 0;
    for (let attempt = 1; ; attempt++) {
      const port = explicitPort ? (options.port as number) : await freePort();
      try {
        const { child, exited } = await launch(runtime, dataDir, port, options, tlsSettings);
        const host = (options.listenAddresses ?? "127.0.0.1").split(",")[0]?.trim() || "127.0.0.1";
        return new LocalPostgres({
          host,
          port,
          user,
          dataDir,
          version: runtime.version,
          created,
          child,
          exited,
        });
      } catch (error) {
        // A free port can be taken between probing and binding; pick another unless the caller chose it.
        const retry = !explicitPort && error instanceof LocalPostgresError && error.code === "PORT_IN_USE";
        if (!retry || attempt >= 3) throw error;
      }
    }
  }

  /** The server's process id. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Stops the server (fast shutdown), escalating to SIGQUIT and SIGKILL if it does not exit in time. */
  async stop(): Promise<void> {
    process.removeListener("exit", this.#killOnExit);
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const steps: [NodeJS.Signals, number][] = [
      ["SIGINT", 10_000],
      ["SIGQUIT", 5_000],
      ["SIGKILL", 5_000],
    ];
    for (const [signal, waitMs] of steps) {
      this.#child.kill(signal);
      if (await settlesWithin(this.#exited, waitMs)) return;
    }
  }
}

async function prepareDataDir(dataDir: string, runtime: PostgresRuntime): Promise<void> {
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (runtime.account) {
    if (!(await traversableByOthers(path.dirname(dataDir)))) {
      throw new LocalPostgresError(
        "INVALID_OPTIONS",
        `running as root, the server runs as the \`postgres\` account, which cannot reach ${dataDir} (a parent directory lacks o+x); choose a data directory under ${os.tmpdir()} or another world-traversable path`,
      );
    }
    await fs.chown(dataDir, runtime.account.uid, runtime.account.gid);
  }
  await fs.chmod(dataDir, 0o700);
}

async function isInitialised(dataDir: string): Promise<boolean> {
  try {
    await fs.access(path.join(dataDir, "PG_VERSION"));
    return true;
  } catch {
    return false;
  }
}

async function initdb(
  runtime: PostgresRuntime,
  dataDir: string,
  user: string,
  options: LocalPostgresOptions,
) {
  const entries = await fs.readdir(dataDir);
  if (entries.length > 0) {
    throw new LocalPostgresError(
      "INITDB_FAILED",
      `${dataDir} is not empty but holds no PostgreSQL cluster (no PG_VERSION); empty it or choose another directory`,
    );
  }
  const pwDir = await fs.mkdtemp(path.join(os.tmpdir(), "pgbind-initdb-"));
  const pwFile = path.join(pwDir, "pw");
  try {
    await fs.writeFile(pwFile, `${options.password}\n`, { mode: 0o600 });
    if (runtime.account) {
      await fs.chown(pwDir, runtime.account.uid, runtime.account.gid);
      await fs.chown(pwFile, runtime.account.uid, runtime.account.gid);
    }
    const args = [
      `--pgdata=${dataDir}`,
      `--username=${user}`,
      `--pwfile=${pwFile}`,
      "--auth=scram-sha-256",
      "--encoding=UTF8",
      "--locale=C",
    ];
    if (options.durable === false) args.push("--no-sync");
    const { code, output } = await runToExit(runtime.initdb, args, runtime);
    if (code !== 0) {
      throw new LocalPostgresError("INITDB_FAILED", `initdb exited with code ${code}:\n${output.trim()}`);
    }
  } finally {
    await fs.rm(pwDir, { recursive: true, force: true });
  }
}

async function writeHba(dataDir: string, runtime: PostgresRuntime, tlsOnly: boolean): Promise<void> {
  const type = tlsOnly ? "hostssl" : "host";
  const hba = [
    "# Written by @pgbind/local-postgres on every start.",
    "local all all scram-sha-256",
    `${type} all all 127.0.0.0/8 scram-sha-256`,
    `${type} all all ::1/128 scram-sha-256`,
    "",
  ].join("\n");
  await writeOwned(path.join(dataDir, "pg_hba.conf"), hba, runtime);
}

async function writeTls(
  dataDir: string,
  runtime: PostgresRuntime,
  tls: NonNullable<LocalPostgresOptions["tls"]>,
): Promise<Record<string, string>> {
  const cert = path.join(dataDir, "server.crt");
  const key = path.join(dataDir, "server.key");
  await writeOwned(cert, tls.cert, runtime);
  await writeOwned(key, tls.key, runtime);
  return { ssl: "on", ssl_cert_file: cert, ssl_key_file: key };
}

async function writeOwned(file: string, content: string, runtime: PostgresRuntime): Promise<void> {
  await fs.writeFile(file, content, { mode: 0o600 });
  await fs.chmod(file, 0o600);
  if (runtime.account) await fs.chown(file, runtime.account.uid, runtime.account.gid);
}

function childEnv(runtime: PostgresRuntime): NodeJS.ProcessEnv {
  // A minimal environment: the server must not pick up the caller's PG* variables or locale.
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    LC_ALL: "C",
    LANG: "C",
    TZ: process.env.TZ ?? "UTC",
    HOME: runtime.root,
  };
}

function runToExit(file: string, args: string[], runtime: PostgresRuntime) {
  return new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(file, args, {
      ...runtime.account,
      env: childEnv(runtime),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
  });
}

function launch(
  runtime: PostgresRuntime,
  dataDir: string,
  port: number,
  options: LocalPostgresOptions,
  tlsSettings: Record<string, string>,
): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const settings: Record<string, string | number | boolean> = {
    listen_addresses: options.listenAddresses ?? "127.0.0.1",
    unix_socket_directories: "",
    ...(options.durable === false
      ? { fsync: "off", synchronous_commit: "off", full_page_writes: "off" }
      : {}),
    ...tlsSettings,
    ...options.settings,
  };
  const args = ["-D", dataDir, "-p", String(port)];
  for (const [name, value] of Object.entries(settings)) args.push("-c", `${name}=${value}`);

  // Its own process group: a terminal's Ctrl-C must not reach the server before its owner decides to stop it.
  const child = spawn(runtime.postgres, args, {
    ...runtime.account,
    env: childEnv(runtime),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const tail: string[] = [];
  let pending = "";
  const onData = (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      options.onLog?.(line);
      tail.push(line);
      if (tail.length > LOG_TAIL_LINES) tail.shift();
    }
  };
  // Keep draining after start: a full pipe would block the server on its next log line.
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);

  return new Promise((resolve, reject) => {
    const timeoutMs = options.startTimeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      cleanup();
      child.kill("SIGKILL");
      reject(
        new LocalPostgresError(
          "START_TIMEOUT",
          `PostgreSQL did not become ready within ${timeoutMs} ms; last log lines:\n${tail.join("\n")}`,
          { retryable: true },
        ),
      );
    }, timeoutMs);
    const onReadyCheck = () => {
      if (tail.some((line) => line.includes(READY_LINE))) {
        cleanup();
        resolve({ child, exited });
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      cleanup();
      const log = tail.join("\n");
      if (/could not bind|Address already in use/i.test(log)) {
        reject(
          new LocalPostgresError("PORT_IN_USE", `port ${port} is already in use:\n${log}`, {
            retryable: true,
          }),
        );
        return;
      }
      if (/lock file .* already exists|is another postmaster/i.test(log)) {
        reject(
          new LocalPostgresError(
            "START_FAILED",
            `another PostgreSQL is already running on ${dataDir} (postmaster.pid is held); stop it, or remove ${path.join(dataDir, "postmaster.pid")} if no such process exists:\n${log}`,
          ),
        );
        return;
      }
      reject(
        new LocalPostgresError(
          "START_FAILED",
          `PostgreSQL exited during start-up (${signal ?? `code ${code}`}):\n${log}`,
        ),
      );
    };
    const onSpawnError = (cause: Error) => {
      cleanup();
      reject(
        new LocalPostgresError("START_FAILED", `could not run ${runtime.postgres}: ${cause.message}`, {
          cause,
        }),
      );
    };
    function cleanup() {
      clearTimeout(timer);
      child.stderr?.removeListener("data", onReadyCheck);
      child.removeListener("exit", onExit);
      child.removeListener("error", onSpawnError);
    }
    child.stderr?.on("data", onReadyCheck);
    child.once("exit", onExit);
    child.once("error", onSpawnError);
  });
}

/** Asks the kernel for a free loopback port. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("could not determine a free port"));
      });
    });
  });
}

function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * A random base64url password (`bytes` random bytes). It never starts with `-`: a CLI flag's value
 * that does (`--password -x…`) is refused as ambiguous, so a generated password must be pasteable.
 */
export function randomPassword(bytes = 18): string {
  for (;;) {
    const password = randomBytes(bytes).toString("base64url");
    if (!password.startsWith("-")) return password;
  }
}
