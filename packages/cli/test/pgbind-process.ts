import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { after } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

const root = path.resolve(import.meta.dirname, "../../..");
export const PGBIND = path.join(root, "node_modules/.bin/pgbind");

/** Every child still running when a test file ends is killed, so a failed test leaves no process behind. */
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) child.kill("SIGKILL");
});

export interface PgbindProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exit: Promise<number | null>;
  /** Resolves with the first match of `pattern` in stdout; rejects if the process exits first. */
  readonly waitFor: (pattern: RegExp) => Promise<RegExpExecArray>;
  /** Sends SIGTERM and waits for the exit code. */
  readonly stop: () => Promise<number | null>;
}

/** Runs the built `pgbind <args>` in `cwd` with only PATH and `env` in its environment. */
export function spawnPgbind(args: string[], cwd: string, env: Record<string, string> = {}): PgbindProcess {
  const child = spawn(PGBIND, args, {
    cwd,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exit = new Promise<number | null>((resolve) =>
    child.once("close", (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  const waitFor = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(stdout);
        if (match) resolve(match);
      };
      check();
      child.stdout?.on("data", check);
      void exit.then((code) => reject(new Error(`pgbind ${args[0]} exited ${code}:\n${stdout}${stderr}`)));
    });
  const stop = () => {
    child.kill("SIGTERM");
    return exit;
  };
  return { child, stdout: () => stdout, stderr: () => stderr, exit, waitFor, stop };
}

/** Retries `probe` every 100 ms until it resolves, for up to `ms`; then fails naming `what`. */
export async function eventually<T>(what: string, probe: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await probe();
    } catch (error) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}: ${(error as Error).message}`);
      await sleep(100);
    }
  }
}
