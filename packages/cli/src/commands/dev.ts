import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { LocalPostgres } from "@pgbind/local-postgres";
import { runChild } from "../child.js";
import { type LocalBinding, prepareBindings, startCluster } from "../dev/cluster.js";
import { devPaths, loadOrCreateState, removeState, writePgpass } from "../dev/state.js";
import { CliError, EXIT } from "../errors.js";
import type { Command } from "../io.js";
import { loadManifest } from "../manifest.js";

export const DEV_USAGE =
  "pgbind dev [--manifest w7s.json] [--fresh] [--grace-ms 5000] [--serve <entry> [--port 8787]] [-- <command …>]";

/**
 * `pgbind dev`: a real local PostgreSQL for the project (data in `.pgbind/`, same port and password
 * on every start), one database per manifest binding, and the bindings injected into a command.
 */
export const devCommand: Command = async (argv, io) => {
  const split = argv.indexOf("--");
  const own = split === -1 ? argv : argv.slice(0, split);
  const command = split === -1 ? [] : argv.slice(split + 1);
  let values: ReturnType<typeof parse>["values"];
  try {
    ({ values } = parse(own));
  } catch (error) {
    throw new CliError("USAGE", `${(error as Error).message}\nUsage: ${DEV_USAGE}`);
  }
  if (values.serve !== undefined && command.length > 0) {
    throw new CliError("USAGE", `give either --serve <entry> or -- <command>, not both\nUsage: ${DEV_USAGE}`);
  }
  if (values.port !== undefined && values.serve === undefined) {
    throw new CliError(
      "USAGE",
      `--port is the --serve port; without --serve it has no meaning\nUsage: ${DEV_USAGE}`,
    );
  }
  const graceMs = values["grace-ms"] === undefined ? undefined : Number(values["grace-ms"]);
  if (graceMs !== undefined && !(Number.isInteger(graceMs) && graceMs >= 0)) {
    throw new CliError(
      "USAGE",
      `--grace-ms: "${values["grace-ms"]}" is not a whole number of milliseconds (e.g. 5000)`,
    );
  }
  const manifestFile = path.resolve(io.cwd, values.manifest ?? "w7s.json");
  const manifest = await loadManifest(manifestFile);
  const projectDir = path.dirname(manifestFile);
  const paths = devPaths(projectDir);
  if (values.fresh) await removeState(paths);

  const started = performance.now();
  const { state } = await loadOrCreateState(paths);
  const server = await startCluster(paths, state, (message) => io.stderr(`pgbind dev: ${message}\n`));
  try {
    const bindings = await prepareBindings(server, state, manifest.bindings);
    await writePgpass(paths, state, server.host);
    io.stderr(banner(server, bindings, projectDir, paths.pgpassFile, performance.now() - started));

    const env: NodeJS.ProcessEnv = { ...(io.env as NodeJS.ProcessEnv) };
    for (const b of bindings) env[b.variable] = b.value;
    const argvToRun =
      values.serve !== undefined
        ? [
            process.execPath,
            cliMain(),
            "serve",
            values.serve,
            "--manifest",
            manifestFile,
            ...(values.port ? ["--port", values.port] : []),
          ]
        : command;
    if (argvToRun.length === 0) {
      io.stderr("pgbind dev: PostgreSQL is running; press Ctrl-C to stop\n");
      await untilStopSignal();
      return EXIT.ok;
    }
    const [file, ...args] = argvToRun as [string, ...string[]];
    return await runChild({
      command: file,
      args,
      env,
      cwd: io.cwd,
      ...(graceMs === undefined ? {} : { graceMs }),
      onSignal: (signal) => io.stderr(`pgbind dev: ${signal}: stopping the command, then PostgreSQL\n`),
    });
  } finally {
    await server.stop();
  }
};

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      manifest: { type: "string" },
      fresh: { type: "boolean" },
      serve: { type: "string" },
      port: { type: "string" },
      "grace-ms": { type: "string" },
    },
  });
}

function banner(
  server: LocalPostgres,
  bindings: readonly LocalBinding[],
  projectDir: string,
  pgpassFile: string,
  elapsedMs: number,
): string {
  const pgpass = path.relative(process.cwd(), pgpassFile) || pgpassFile;
  const lines = [
    `pgbind dev: PostgreSQL ${server.version} on ${server.host}:${server.port}, data in ${path.join(projectDir, ".pgbind")} (ready in ${(elapsedMs / 1000).toFixed(1)} s)`,
  ];
  const width = Math.max(0, ...bindings.map((b) => b.binding.length));
  for (const b of bindings) {
    const masked = `postgres://${server.user}:********@${server.host}:${server.port}/${encodeURIComponent(b.database)}?sslmode=disable`;
    lines.push(`  ${b.binding.padEnd(width)}  ${masked}  (${b.variable})`);
    lines.push(
      `  ${"".padEnd(width)}  psql: PGPASSFILE=${pgpass} psql -h ${server.host} -p ${server.port} -U ${server.user} ${b.database}`,
    );
  }
  if (bindings.length === 0) lines.push("  (the manifest declares no bindings)");
  return `${lines.join("\n")}\n`;
}

function cliMain(): string {
  return fileURLToPath(new URL("../main.js", import.meta.url));
}

function untilStopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
    const stop = () => {
      for (const s of signals) process.removeListener(s, stop);
      resolve();
    };
    for (const s of signals) process.on(s, stop);
  });
}
