import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";
import { CliError } from "./errors.js";

/** How long a command gets to exit after SIGTERM before it (and its process group) is killed. */
export const DEFAULT_GRACE_MS = 5_000;

export interface RunChildOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly graceMs?: number;
  /** Called once when a stop signal arrives, before it is passed on. */
  readonly onSignal?: (signal: NodeJS.Signals) => void;
}

/**
 * Runs a command to completion with inherited stdio and returns its exit code (128 + signal number
 * when it died of a signal, as shells report it).
 *
 * SIGINT/SIGTERM/SIGHUP sent to pgbind are passed on; a command still running `graceMs` later is
 * killed. Without a terminal the command gets its own process group, so the kill also takes its
 * children (an `npm run` → `sh` → `node` chain) and nothing is orphaned. With a terminal it stays
 * in the foreground group, so interactive programs like psql can read from it; Ctrl-C reaches it
 * from the terminal directly.
 */
export function runChild(options: RunChildOptions): Promise<number> {
  const interactive = process.stdin.isTTY === true;
  let child: ChildProcess;
  try {
    child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env: options.env,
      stdio: "inherit",
      detached: !interactive,
    });
  } catch (cause) {
    return Promise.reject(commandError(options.command, cause));
  }
  const pid = child.pid;
  const signalTarget = () => (interactive || pid === undefined ? pid : -pid);
  const send = (signal: NodeJS.Signals) => {
    const target = signalTarget();
    if (target === undefined) return;
    try {
      process.kill(target, signal);
    } catch {
      // Already gone.
    }
  };

  let killTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  const onStop = (signal: NodeJS.Signals) => {
    if (!stopping) {
      stopping = true;
      options.onSignal?.(signal);
      // A terminal already delivered Ctrl-C to the whole foreground group.
      if (!(interactive && signal === "SIGINT")) send(signal === "SIGHUP" ? "SIGHUP" : "SIGTERM");
      killTimer = setTimeout(() => send("SIGKILL"), options.graceMs ?? DEFAULT_GRACE_MS);
    } else {
      // A second Ctrl-C means now.
      send("SIGKILL");
    }
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const signal of signals) process.on(signal, onStop);

  return new Promise((resolve, reject) => {
    child.once("error", (cause) => {
      cleanup();
      reject(commandError(options.command, cause));
    });
    child.once("exit", (code, signal) => {
      cleanup();
      // The command is gone; take any children it left in its group with it.
      if (!interactive && pid !== undefined) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // No such group left: nothing was orphaned.
        }
      }
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 1) : 1));
    });
  });

  function cleanup() {
    if (killTimer) clearTimeout(killTimer);
    for (const signal of signals) process.removeListener(signal, onStop);
  }
}

function commandError(command: string, cause: unknown): CliError {
  const code = (cause as { code?: string }).code;
  const reason =
    code === "ENOENT" ? "not found on PATH" : code === "EACCES" ? "not executable" : (cause as Error).message;
  return new CliError("COMMAND_FAILED", `could not run \`${command}\`: ${reason}`, { cause });
}
