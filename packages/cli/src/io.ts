import type { BindingEnv } from "@pgbind/sdk";

/** Where a command writes and what it reads; injectable for tests. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** The environment the command sees (and passes on to child processes). */
  readonly env: BindingEnv;
  /** Directory relative paths are resolved against. */
  readonly cwd: string;
}

/** One `pgbind <command>`: parses its own arguments and returns the exit code. */
export type Command = (argv: readonly string[], io: CliIo) => Promise<number>;
