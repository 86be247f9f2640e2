import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  analyzeEntry,
  type Compatibility,
  type EntryAnalysis,
  loadCompatibility,
  nodeCompatProblem,
  type Problem,
} from "../compat.js";
import { CliError, EXIT } from "../errors.js";
import type { Command } from "../io.js";
import { loadManifest, type Manifest } from "../manifest.js";

export type { Problem as CheckProblem } from "../compat.js";

export const CHECK_USAGE = "pgbind check [dir] [--manifest <file>] [--entry <file>] [--json]";

/** The manifest a project has unless told otherwise, relative to its directory. */
export const DEFAULT_MANIFEST = "w7s.json";
/** The backend bundle a project has unless told otherwise, relative to its directory. */
export const DEFAULT_ENTRY = "dist/server/index.js";

/** What {@link checkProject} checks. */
export interface CheckOptions {
  /** The project directory. */
  readonly dir: string;
  /** The manifest, relative to `dir` or absolute; default `w7s.json`. */
  readonly manifest?: string;
  /** The backend bundle, relative to `dir` or absolute; default `dist/server/index.js`. */
  readonly entry?: string;
  /** Paths in results and messages are relative to this directory when inside it; default `dir`. */
  readonly cwd?: string;
}

/** The entry bundle as found by {@link checkProject}. */
export interface EntryReport extends EntryAnalysis {
  readonly path: string;
}

/** Everything {@link checkProject} found; `ok` when `problems` is empty. */
export interface CheckResult {
  readonly ok: boolean;
  /** Null when the manifest is missing or invalid. */
  readonly manifest: Manifest | null;
  /** Null when the entry is missing or does not parse. */
  readonly entry: EntryReport | null;
  /** Null when there is no metadata file beside the entry, or it is not a JSON object. */
  readonly compatibility: Compatibility | null;
  /** Every problem in the manifest, the entry and the metadata, each mapping to a `CliError` code. */
  readonly problems: readonly Problem[];
}

/**
 * Checks a W7S project without running it: the manifest, the entry bundle (an ES module with a default
 * export) and its compatibility metadata, including that Node built-ins it imports are enabled by a
 * flag. Reports every problem at once; throws only on unexpected failures.
 */
export async function checkProject(options: CheckOptions): Promise<CheckResult> {
  const dir = path.resolve(options.dir);
  const cwd = path.resolve(options.cwd ?? dir);
  const display = (file: string): string => {
    const relative = path.relative(cwd, file);
    return relative === "" || relative.startsWith("..") || path.isAbsolute(relative) ? file : relative;
  };
  const manifestFile = path.resolve(dir, options.manifest ?? DEFAULT_MANIFEST);
  const entryFile = path.resolve(dir, options.entry ?? DEFAULT_ENTRY);
  const [manifest, entry, lookup] = await Promise.all([
    loadManifest(manifestFile, display(manifestFile)).then(
      (value) => ({ value, problems: [] }),
      (error: unknown) => ({ value: null, problems: [toProblem(error)] }),
    ),
    inspectEntry(entryFile, display(entryFile)),
    loadCompatibility(path.dirname(entryFile), display),
  ]);
  const builtinProblem = nodeCompatProblem(display(entryFile), entry.value?.builtins ?? [], lookup);
  const problems = [
    ...manifest.problems,
    ...entry.problems,
    ...lookup.problems,
    ...(builtinProblem === null ? [] : [builtinProblem]),
  ];
  return {
    ok: problems.length === 0,
    manifest: manifest.value,
    entry: entry.value,
    compatibility: lookup.compatibility,
    problems,
  };
}

async function inspectEntry(
  file: string,
  name: string,
): Promise<{ value: EntryReport | null; problems: Problem[] }> {
  let source: string;
  try {
    source = await readFile(file, "utf8");
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    const message = missing
      ? `${name} not found; build the backend first, or pass --entry <file>`
      : `${name}: cannot be read: ${(error as Error).message}`;
    return { value: null, problems: [{ code: missing ? "ENTRY_NOT_FOUND" : "ENTRY_INVALID", message }] };
  }
  let analysis: EntryAnalysis;
  try {
    analysis = await analyzeEntry(source, name);
  } catch (error) {
    return { value: null, problems: [toProblem(error)] };
  }
  const problems: Problem[] = [];
  if (!analysis.isModule)
    problems.push({
      code: "ENTRY_INVALID",
      message: `${name} is not an ES module (no import or export statement); build it with format "esm" and export the handler: export default { fetch }`,
    });
  else if (!analysis.hasDefaultExport)
    problems.push({
      code: "ENTRY_INVALID",
      message: `${name} has no default export; the backend must export its handler: export default { fetch }`,
    });
  return { value: { path: name, ...analysis }, problems };
}

function toProblem(error: unknown): Problem {
  if (error instanceof CliError) return { code: error.code, message: error.message };
  throw error;
}

/** `pgbind check [dir]`: checks a W7S project; exit 0 when it is ready to serve, 2 otherwise. */
export const checkCommand: Command = async (argv, io) => {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
    if (parsed.positionals.length > 1) throw new Error("expected at most one project directory");
  } catch (error) {
    io.stderr(`pgbind check: ${(error as Error).message}\nUsage: ${CHECK_USAGE}\n`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  // Paths on the command line are relative to where the command runs, like any other tool's.
  const result = await checkProject({
    dir: path.resolve(io.cwd, positionals[0] ?? "."),
    cwd: io.cwd,
    ...(values.manifest === undefined ? {} : { manifest: path.resolve(io.cwd, values.manifest) }),
    ...(values.entry === undefined ? {} : { entry: path.resolve(io.cwd, values.entry) }),
  });
  if (values.json) io.stdout(`${JSON.stringify(result, null, 2)}\n`);
  for (const problem of result.problems) io.stderr(`pgbind check: ${problem.message}\n`);
  if (!result.ok) return EXIT.usage;
  if (!values.json) io.stdout(summary(result));
  return EXIT.ok;
};

function summary({ manifest, entry, compatibility }: CheckResult): string {
  const bindings =
    manifest?.bindings.map((b) => `${b.binding} → ${b.id}`).join(", ") || "no hyperdrive bindings";
  const builtins = entry?.builtins.length ? `; Node built-ins: ${entry.builtins.join(", ")}` : "";
  const flags = compatibility
    ? `${compatibility.flags.join(", ") || "none"} (${compatibility.path}${compatibility.date ? `, compatibility date ${compatibility.date}` : ""})`
    : "none (no compatibility metadata)";
  const rows = [
    ["manifest", `${manifest?.path}: ${bindings}`],
    ["entry", `${entry?.path} (default export${builtins})`],
    ["flags", flags],
  ];
  return `${rows.map(([key, value]) => `${key?.padEnd(8)}  ${value}`).join("\n")}\nok\n`;
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: { json: { type: "boolean" }, manifest: { type: "string" }, entry: { type: "string" } },
  });
}
