import path from "node:path";
import { parseArgs } from "node:util";
import { BindingResolver, bindingEnvName, isPgBindError } from "@pgbind/sdk";
import { runChild } from "../child.js";
import type { ControlBindingResolver } from "../control/resolve.js";
import { CliError } from "../errors.js";
import type { Command } from "../io.js";
import { loadManifest } from "../manifest.js";
import { findControlResolver } from "../serve/bindings.js";

export const RUN_USAGE = "pgbind run [--manifest w7s.json] -- <command …>";

/**
 * `pgbind run`: runs any process (a server, a migration, psql) with the manifest's bindings in its
 * environment. Under `pgbind dev` they are already injected and are checked here, so a missing or
 * broken binding fails before the command starts rather than inside it.
 */
export const runCommand: Command = async (argv, io) => {
  const split = argv.indexOf("--");
  if (split === -1 || split === argv.length - 1) {
    throw new CliError("USAGE", `expected a command after --\nUsage: ${RUN_USAGE}`);
  }
  let values: { manifest?: string | undefined };
  try {
    ({ values } = parseArgs({
      args: argv.slice(0, split),
      strict: true,
      allowPositionals: false,
      options: { manifest: { type: "string" } },
    }));
  } catch (error) {
    throw new CliError("USAGE", `${(error as Error).message}\nUsage: ${RUN_USAGE}`);
  }
  const manifest = await loadManifest(path.resolve(io.cwd, values.manifest ?? "w7s.json"));
  const resolver = new BindingResolver({ env: io.env });
  const env: NodeJS.ProcessEnv = { ...(io.env as NodeJS.ProcessEnv) };
  const options = { cwd: io.cwd, log: (message: string) => io.stderr(`pgbind run: ${message}\n`) };
  let control: Promise<ControlBindingResolver | undefined> | undefined;
  for (const { binding, id } of manifest.bindings) {
    try {
      await resolver.getPostgresConnection(binding);
      continue;
    } catch (error) {
      if (!isPgBindError(error)) throw error;
      if (error.code !== "BINDING_NOT_FOUND")
        throw new CliError("BINDING_UNAVAILABLE", `binding ${binding} (id "${id}"): ${error.message}`, {
          cause: error,
        });
    }
    // Not injected: resolve the id through the control plane, if one is configured or discovered.
    control ??= findControlResolver(io.env, options);
    const plane = await control;
    if (plane === undefined)
      throw new CliError(
        "BINDING_UNAVAILABLE",
        `binding ${binding} (id "${id}") is not available: ${bindingEnvName(binding)} is not set. Run under the local platform, e.g. \`pgbind dev -- pgbind run -- <command>\`, or point PGBIND_CONTROL_URL at a control plane (\`pgbind control\`) that knows the id`,
      );
    try {
      const found = await plane.resolve(binding, id);
      env[found.variable] = found.value;
    } catch (error) {
      if (!(error instanceof CliError)) throw error;
      throw new CliError(error.code, `binding ${binding} (id "${id}"): ${error.message}`, {
        exitCode: error.exitCode,
      });
    }
  }
  const [file, ...args] = argv.slice(split + 1) as [string, ...string[]];
  return runChild({ command: file, args, env, cwd: io.cwd });
};
