// Runs `pgbind gateway` as a child process for the gateway-*.test.ts files and reads its JSON logs.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import pg from "pg";

export const root = path.resolve(import.meta.dirname, "../../..");
export const PGBIND = path.join(root, "node_modules/.bin/pgbind");

/** One JSON log line from the gateway's stderr. */
export interface LogLine {
  readonly level: string;
  readonly time: string;
  readonly msg: string;
  readonly event?: string;
  readonly [field: string]: unknown;
}

export interface RunningGateway {
  readonly child: ChildProcess;
  /** The port from the "listening on" line; rejects if the process exits first. */
  readonly listening: Promise<number>;
  readonly exited: Promise<number | null>;
  output(): { stdout: string; stderr: string };
  /** The stderr lines that are JSON objects, parsed. */
  logs(): LogLine[];
  /**
   * Resolves with the first log line that `match` accepts, skipping the first `from` lines (pass
   * `logs().length` to wait for a new one).
   */
  waitForLog(
    match: (line: LogLine) => boolean,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<LogLine>;
  /** Sends SIGTERM (if still running) and waits for the exit code. */
  stop(): Promise<number | null>;
}

export function startGateway(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): RunningGateway {
  const child = spawn(PGBIND, ["gateway", ...args], {
    cwd: options.cwd ?? root,
    env: { PATH: process.env.PATH ?? "", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const waiter of [...waiters]) waiter();
  };
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
    notify();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
    notify();
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      exitCode = code;
      resolve(code);
      notify();
    }),
  );
  const logs = (): LogLine[] =>
    stderr
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as LogLine);
  const listening = new Promise<number>((resolve, reject) => {
    const check = () => {
      const match = /listening on [^\s]+:(\d+)/.exec(stdout);
      if (match) {
        waiters.delete(check);
        resolve(Number(match[1]));
      } else if (exitCode !== undefined) {
        waiters.delete(check);
        reject(new Error(`pgbind gateway exited ${exitCode}: ${stderr}`));
      }
    };
    waiters.add(check);
  });
  // Tests that expect an early exit await `exited` instead.
  listening.catch(() => {});
  return {
    child,
    listening,
    exited,
    output: () => ({ stdout, stderr }),
    logs,
    waitForLog(match, { from = 0, timeoutMs = 5_000 } = {}) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching log line within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        const check = () => {
          const found = logs().slice(from).find(match);
          if (!found && exitCode === undefined) return;
          waiters.delete(check);
          clearTimeout(timer);
          if (found) resolve(found);
          else reject(new Error(`pgbind gateway exited ${exitCode} first; stderr:\n${stderr}`));
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (exitCode === undefined) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** A pg client for the gateway on 127.0.0.1:`port`; connection errors after connect are swallowed. */
export function gatewayClient(port: number, config: pg.ClientConfig): pg.Client {
  const client = new pg.Client({ host: "127.0.0.1", port, ...config });
  client.on("error", () => {});
  return client;
}

/** Connects, runs `query` and disconnects; rejects as the connection does. */
export async function canLogIn(port: number, config: pg.ClientConfig, query = "select 1"): Promise<void> {
  const client = gatewayClient(port, config);
  await client.connect();
  try {
    await client.query(query);
  } finally {
    await client.end();
  }
}

/** `text` as a RegExp matching it literally. */
export function literal(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
}
