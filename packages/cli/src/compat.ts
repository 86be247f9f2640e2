import { readFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import path from "node:path";
import { init, parse } from "es-module-lexer";
import { CliError, type CliErrorCode } from "./errors.js";
import { parseJson } from "./manifest.js";

/** The `compatibility_flags` pgbind accepts in the runtime metadata beside a backend. */
export const SUPPORTED_COMPATIBILITY_FLAGS = [
  "nodejs_compat",
  "nodejs_compat_v2",
  "nodejs_als",
  "no_nodejs_compat_v2",
] as const;

/** Either of these lets a backend import Node built-ins (`net`, `tls`, `crypto`, …). */
export const NODE_COMPAT_FLAGS = ["nodejs_compat", "nodejs_compat_v2"] as const;

/** Where the metadata may live, beside the entry, in order of preference. */
export const COMPATIBILITY_FILES = ["wrangler.json", "compatibility.json"] as const;

/** One problem found by a check: the `CliError` code it maps to and the message a person reads. */
export interface Problem {
  readonly code: CliErrorCode;
  readonly message: string;
}

/** Validated runtime compatibility metadata. */
export interface Compatibility {
  /** The metadata file, as named in messages. */
  readonly path: string;
  readonly flags: readonly string[];
  /** `YYYY-MM-DD`, or null when the file has none. */
  readonly date: string | null;
}

/** What was found beside an entry: `path` is null when neither metadata file exists. */
export interface CompatibilityLookup {
  /** The files looked for, as named in messages. */
  readonly searched: readonly string[];
  readonly path: string | null;
  /** Null when there is no file, or it is not a JSON object (then `problems` says why). */
  readonly compatibility: Compatibility | null;
  readonly problems: readonly Problem[];
}

/**
 * Reads `wrangler.json` or `compatibility.json` in `dir` (the entry's directory). `display` turns an
 * absolute path into the name used in messages.
 */
export async function loadCompatibility(
  dir: string,
  display: (file: string) => string = (file) => file,
): Promise<CompatibilityLookup> {
  const found: { file: string; text: string }[] = [];
  const problems: Problem[] = [];
  for (const name of COMPATIBILITY_FILES) {
    const file = path.join(dir, name);
    try {
      found.push({ file, text: await readFile(file, "utf8") });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR")
        problems.push(invalid(`${display(file)}: cannot be read: ${(error as Error).message}`));
    }
  }
  const searched = COMPATIBILITY_FILES.map((name) => display(path.join(dir, name)));
  const [first, second] = found;
  if (first === undefined) return { searched, path: null, compatibility: null, problems };
  const name = display(first.file);
  // Two files could disagree, and `serve` must not pick one silently.
  if (second !== undefined)
    problems.push(invalid(`both ${name} and ${display(second.file)} exist; keep only one of them`));
  let value: unknown;
  try {
    value = parseJson(first.text, name, "COMPATIBILITY_INVALID");
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    return { searched, path: name, compatibility: null, problems: [...problems, invalid(error.message)] };
  }
  const result = validateCompatibility(value, name, path.basename(first.file) === "compatibility.json");
  return {
    searched,
    path: name,
    compatibility: result.compatibility,
    problems: [...problems, ...result.problems],
  };
}

/**
 * Validates parsed metadata. `strict` rejects keys other than `compatibility_flags` and
 * `compatibility_date` (right for `compatibility.json`; `wrangler.json` has many other keys).
 * Problems come as one `COMPATIBILITY_INVALID` message, `<file>: invalid compatibility metadata:`
 * then one problem per line.
 */
export function validateCompatibility(
  value: unknown,
  file: string,
  strict: boolean,
): { compatibility: Compatibility | null; problems: Problem[] } {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { compatibility: null, problems: [invalid(`${file}: must be a JSON object`)] };
  const record = value as Record<string, unknown>;
  const issues: string[] = [];
  const allowed = ["compatibility_flags", "compatibility_date"];
  if (strict)
    for (const key of Object.keys(record))
      if (!allowed.includes(key)) issues.push(`${key}: unknown key; allowed: ${allowed.join(", ")}`);
  const flags: string[] = [];
  const rawFlags = record.compatibility_flags;
  if (rawFlags !== undefined && !Array.isArray(rawFlags)) {
    issues.push(`compatibility_flags: must be an array of strings, e.g. ["nodejs_compat_v2"]`);
  } else {
    (rawFlags ?? []).forEach((flag: unknown, index) => {
      const at = `compatibility_flags[${index}]`;
      if (typeof flag !== "string") issues.push(`${at}: must be a string, e.g. "nodejs_compat_v2"`);
      else if (!(SUPPORTED_COMPATIBILITY_FLAGS as readonly string[]).includes(flag))
        issues.push(
          `${at}: unknown flag ${JSON.stringify(flag)}; supported: ${SUPPORTED_COMPATIBILITY_FLAGS.join(", ")}`,
        );
      else flags.push(flag);
    });
    if (flags.includes("nodejs_compat_v2") && flags.includes("no_nodejs_compat_v2"))
      issues.push(`compatibility_flags: "nodejs_compat_v2" and "no_nodejs_compat_v2" contradict; keep one`);
  }
  const date = record.compatibility_date;
  if (date !== undefined && !(typeof date === "string" && isRealDate(date)))
    issues.push(
      `compatibility_date: ${JSON.stringify(date)} is not a real date written YYYY-MM-DD, e.g. "2025-09-01"`,
    );
  const compatibility = { path: file, flags, date: typeof date === "string" ? date : null };
  if (issues.length === 0) return { compatibility, problems: [] };
  const message = `${file}: invalid compatibility metadata:\n${issues.map((i) => `  ${i}`).join("\n")}`;
  return { compatibility, problems: [invalid(message)] };
}

/**
 * The problem when `entry` imports Node built-ins without a flag that provides them, else null.
 * `lookup` is what {@link loadCompatibility} found; an unreadable metadata file was already reported.
 */
export function nodeCompatProblem(
  entry: string,
  builtins: readonly string[],
  lookup: CompatibilityLookup,
): Problem | null {
  if (builtins.length === 0 || (lookup.path !== null && lookup.compatibility === null)) return null;
  const flags = lookup.compatibility?.flags ?? [];
  if (flags.some((flag) => (NODE_COMPAT_FLAGS as readonly string[]).includes(flag))) return null;
  const imports = `${entry} imports Node built-ins (${builtins.join(", ")})`;
  const add = `"compatibility_flags": ["nodejs_compat_v2"]`;
  if (lookup.path === null) {
    const [wrangler, compat] = lookup.searched;
    return invalid(`${imports} but there is no ${wrangler} or ${compat}; add ${wrangler} with {${add}}`);
  }
  return invalid(
    `${imports} but ${lookup.path} has no "nodejs_compat" or "nodejs_compat_v2" flag; add ${add}`,
  );
}

/** What static analysis of an entry bundle found, without executing it. */
export interface EntryAnalysis {
  /** Has `import`/`export` syntax (a CommonJS or script bundle has none). */
  readonly isModule: boolean;
  readonly hasDefaultExport: boolean;
  /** Node built-ins it imports or requires, without `node:`, in order of first appearance. */
  readonly builtins: readonly string[];
}

// `require("x")`, esbuild's `__require("x")` (its ESM output for CommonJS dependencies), and
// `process.getBuiltinModule("x")`, with a literal argument. A call inside a comment or string is
// counted too: over-reporting is the safe side for a check.
const REQUIRE_CALL =
  /(?:(?<![\w$.])(?:__)?require|\bprocess\.getBuiltinModule)\s*\(\s*(["'`])([^"'`\\\n$]+)\1\s*\)/g;

/**
 * Analyzes an entry bundle's source with es-module-lexer.
 * @throws CliError `ENTRY_INVALID` when `source` does not lex as JavaScript (`name` names it).
 */
export async function analyzeEntry(source: string, name: string): Promise<EntryAnalysis> {
  await init();
  let imports: ReturnType<typeof parse>[0];
  let exports: ReturnType<typeof parse>[1];
  let isModule: boolean;
  try {
    [imports, exports, , isModule] = parse(source, name);
  } catch (error) {
    const offset = (error as { idx?: number }).idx ?? 0;
    const lines = source.slice(0, offset).split("\n");
    const where = `${lines.length}:${(lines.at(-1)?.length ?? 0) + 1}`;
    throw new CliError("ENTRY_INVALID", `${name}: not valid JavaScript (syntax error at ${where})`, {
      cause: error,
    });
  }
  const found: { at: number; specifier: string }[] = [];
  for (const imp of imports) {
    const specifier =
      imp.type === "dynamic"
        ? imp.glob
          ? undefined
          : imp.specifier
        : imp.typeOnly
          ? undefined
          : imp.specifier;
    if (typeof specifier === "string") found.push({ at: imp.start, specifier });
  }
  for (const match of source.matchAll(REQUIRE_CALL))
    if (match[2] !== undefined) found.push({ at: match.index ?? 0, specifier: match[2] });
  const builtins = found
    .sort((a, b) => a.at - b.at)
    .map(({ specifier }) => builtinName(specifier))
    .filter((builtin): builtin is string => builtin !== null);
  return {
    isModule,
    hasDefaultExport: exports.some((e) => e.type !== "reexport-all" && e.name === "default" && !e.typeOnly),
    builtins: [...new Set(builtins)],
  };
}

/** `net` for `net` or `node:net`, null for anything that is not a Node built-in. */
export function builtinName(specifier: string): string | null {
  if (specifier.startsWith("node:")) return specifier.slice("node:".length);
  return builtinModules.includes(specifier) ? specifier : null;
}

function isRealDate(text: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (match === null) return false;
  const [year, month, day] = match.slice(1).map(Number) as [number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

function invalid(message: string): Problem {
  return { code: "COMPATIBILITY_INVALID", message };
}
