import { type ParseArgsConfig, parseArgs } from "node:util";
import { CliError } from "../errors.js";
import type { CliIo } from "../io.js";
import { ControlClient } from "./client.js";
import { requireControl } from "./discovery.js";

/** The `options` of a parseArgs config. */
export type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;

/** Flags every control plane client command takes. */
export const CLIENT_OPTIONS = {
  json: { type: "boolean" },
  "control-url": { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionsConfig;

/** How the client commands find the control plane; shared by the help texts. */
export const DISCOVERY_HELP = `Finding the control plane: --control-url <url> and --token <token>, else PGBIND_CONTROL_URL and
PGBIND_TOKEN, else .pgbind/control/control.json in this directory (written by \`pgbind control\`) and
the token file it names. The token is never printed.`;

/** parseArgs for one subcommand, turning its errors into USAGE errors that show `usage`. */
type SubcommandConfig<T extends OptionsConfig> = {
  args: string[];
  options: T;
  allowPositionals: true;
  strict: true;
};

export function parseSubcommand<T extends OptionsConfig>(
  argv: readonly string[],
  options: T,
  usage: string,
): ReturnType<typeof parseArgs<SubcommandConfig<T>>> {
  try {
    return parseArgs<SubcommandConfig<T>>({
      args: [...argv],
      options,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new CliError("USAGE", `${(error as Error).message}\nUsage: ${usage}`);
  }
}

/** A client for the control plane the flags, the environment or control.json point at. */
export async function connect(
  values: { "control-url"?: string | undefined; token?: string | undefined },
  io: CliIo,
  secrets: readonly string[] = [],
): Promise<ControlClient> {
  const target = await requireControl({ controlUrl: values["control-url"], token: values.token }, io);
  return new ControlClient(target, { secrets });
}

/** Pretty JSON on stdout, for scripts. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

/** `text` as a whole number, or a USAGE error; range checks are left to the control plane. */
export function parseWholeNumber(text: string, flag: string, example: string): number {
  const value = /^-?\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value))
    throw new CliError("USAGE", `${flag}: ${JSON.stringify(text)} is not a whole number (e.g. ${example})`);
  return value;
}

/** Exactly these positionals, or a USAGE error saying what was expected (values are not echoed: one might be a secret). */
export function positionals(given: readonly string[], names: readonly string[], usage: string): string[] {
  if (given.length !== names.length)
    throw new CliError(
      "USAGE",
      `expected ${names.length === 0 ? "no arguments" : names.join(" ")}, got ${given.length} argument${given.length === 1 ? "" : "s"}\nUsage: ${usage}`,
    );
  return [...given];
}
