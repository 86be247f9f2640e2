import path from "node:path";
import { inspect, parseArgs } from "node:util";
import { DEFAULT_CHECK_MS, followCredentials } from "../control/follow.js";
import { CliError, EXIT } from "../errors.js";
import type { CliIo, Command } from "../io.js";
import { loadManifest, type Manifest } from "../manifest.js";
import { BindingEnvObject, bindingSecrets, redact, resolveBindings } from "../serve/bindings.js";
import { assertEntryExists } from "../serve/handler.js";
import { startServer } from "../serve/server.js";

export const SERVE_USAGE =
  "pgbind serve <entry> [--manifest w7s.json] [--port 8787] [--host 127.0.0.1] [--watch]";

const DEFAULT_MANIFEST = "w7s.json";
const DEFAULT_PORT = 8787;
const DEFAULT_HOST = "127.0.0.1";
/** After a graceful close, how long the backend's own leftovers (pools, timers) may keep us alive. */
const EXIT_GRACE_MS = 1_000;
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * `pgbind serve <entry>`: serves a fetch-handler module (`export default { fetch(request, env, ctx) }`)
 * over HTTP, with `env` holding the manifest's bindings, until SIGINT/SIGTERM; then closes gracefully.
 */
export const serveCommand: Command = async (argv, io) => {
  const options = parseOptions(argv);
  const entry = path.resolve(io.cwd, options.entry);
  await assertEntryExists(entry, options.entry);
  const manifest = await readManifest(options.manifest, io);
  const log = (message: string) => io.stderr(`pgbind serve: ${message}\n`);
  const checkMs = credentialCheckMs(io.env);
  const { env, injected, fromControl, control } =
    manifest === undefined
      ? { env: {}, injected: {}, fromControl: [], control: undefined }
      : await resolveBindings(manifest, io.env, { cwd: io.cwd, log });
  // Bindings resolved through the control plane are injected as PGBIND_<NAME>_BINDING too, so
  // `getPostgresConnection("DB")` inside the backend (this process) finds them as well.
  if (io.env === process.env) Object.assign(process.env, injected);

  // Mutable on purpose: a credential that replaces a rotated one is added, and redaction sees it at once.
  const secrets = bindingSecrets(env);
  const stopFollowing =
    control === undefined || fromControl.length === 0
      ? () => {}
      : followCredentials(
          control,
          fromControl.map((b) => ({ ...b })),
          {
            intervalMs: checkMs,
            log,
            onChange: (binding, resolved) => {
              const next = new BindingEnvObject(resolved.connection);
              for (const secret of bindingSecrets({ [binding]: next }))
                if (!secrets.includes(secret)) secrets.push(secret);
              secrets.sort((a, b) => b.length - a.length);
              // Requests from now on get the new object (a backend that pools per connection string moves over).
              env[binding] = next;
              if (io.env === process.env) process.env[resolved.variable] = resolved.value;
            },
          },
        );
  const server = await startServer({
    entry,
    display: options.entry,
    host: options.host,
    port: options.port,
    env,
    watch: options.watch,
    log,
    secrets,
  });
  // Listen for SIGINT/SIGTERM before the banner: whoever waits for it may signal at once.
  const stopSignal = nextStopSignal();
  io.stdout(banner(options.entry, server.url, manifest, env, options.watch));

  // Like workerd, a promise the backend forgot to await is logged, not fatal to every other request.
  const onRejection = (reason: unknown) =>
    log(
      `unhandled promise rejection in the backend (await it or pass it to ctx.waitUntil):\n${redact(inspect(reason), secrets)}`,
    );
  process.on("unhandledRejection", onRejection);
  try {
    const signal = await stopSignal;
    const force = signal === "SIGINT" ? " (Ctrl-C again to stop at once)" : "";
    io.stderr(`pgbind serve: ${signal}: finishing in-flight requests${force}\n`);
    await server.close();
  } finally {
    stopFollowing();
    process.off("unhandledRejection", onRejection);
  }
  // The backend may hold database pools or timers that would keep Node running forever; once
  // everything pgbind owns is closed, give them a moment and then exit anyway.
  setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
  return EXIT.ok;
};

/** PGBIND_CREDENTIAL_CHECK_MS: how often credentials from the control plane are checked for rotation. */
function credentialCheckMs(env: Readonly<Record<string, unknown>>): number {
  const raw = env.PGBIND_CREDENTIAL_CHECK_MS;
  if (typeof raw !== "string" || raw === "") return DEFAULT_CHECK_MS;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 100)
    throw new CliError(
      "USAGE",
      `PGBIND_CREDENTIAL_CHECK_MS: "${raw.slice(0, 20)}" is not valid; expected milliseconds, an integer of at least 100 (default ${DEFAULT_CHECK_MS})`,
    );
  return ms;
}

interface ServeOptions {
  readonly entry: string;
  readonly manifest: string | undefined;
  readonly port: number;
  readonly host: string;
  readonly watch: boolean;
}

function parseOptions(argv: readonly string[]): ServeOptions {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new CliError("USAGE", `${(error as Error).message}\nUsage: ${SERVE_USAGE}`);
  }
  const [entry, ...extra] = parsed.positionals;
  if (entry === undefined || extra.length > 0) {
    throw new CliError(
      "USAGE",
      `expected exactly one entry module (e.g. dist/server/index.js), got ${parsed.positionals.length}\nUsage: ${SERVE_USAGE}`,
    );
  }
  const { values } = parsed;
  if (values.host === "") throw new CliError("USAGE", `--host must not be empty\nUsage: ${SERVE_USAGE}`);
  return {
    entry,
    manifest: values.manifest,
    port: values.port === undefined ? DEFAULT_PORT : parsePort(values.port),
    host: values.host ?? DEFAULT_HOST,
    watch: values.watch ?? false,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      manifest: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      watch: { type: "boolean" },
    },
  });
}

function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 0 && port <= 65_535)) {
    throw new CliError(
      "USAGE",
      `--port ${JSON.stringify(text)} is not a port; use 1–65535, or 0 for any free port`,
    );
  }
  return port;
}

/** The manifest, or undefined when the default one does not exist (serving without bindings). */
async function readManifest(given: string | undefined, io: CliIo): Promise<Manifest | undefined> {
  const file = path.resolve(io.cwd, given ?? DEFAULT_MANIFEST);
  try {
    return await loadManifest(file, given ?? DEFAULT_MANIFEST);
  } catch (error) {
    if (given !== undefined || !(error instanceof CliError) || error.code !== "MANIFEST_NOT_FOUND")
      throw error;
    io.stdout(
      `No ${DEFAULT_MANIFEST} in ${io.cwd}: serving without bindings (pass --manifest <file> to use one)\n`,
    );
    return undefined;
  }
}

function banner(
  entry: string,
  url: string,
  manifest: Manifest | undefined,
  env: Readonly<Record<string, BindingEnvObject>>,
  watch: boolean,
): string {
  const lines = [`Serving ${entry} on ${url}`];
  for (const [name, binding] of Object.entries(env)) lines.push(`  env.${name} → ${String(binding)}`);
  if (manifest !== undefined && manifest.bindings.length === 0)
    lines.push(`  (${manifest.path} declares no bindings)`);
  if (watch) lines.push(`  watching ${path.dirname(entry)}/ for changes`);
  return `${lines.join("\n")}\n`;
}

/** Resolves with the first SIGINT/SIGTERM; the listeners exist only while waiting. */
function nextStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      for (const s of STOP_SIGNALS) process.off(s, stop);
      resolve(signal);
    };
    for (const s of STOP_SIGNALS) process.on(s, stop);
  });
}
