// Benchmark of @pgbind/sdk's core path: bundle size (esbuild, code splitting) and cold import + resolve time.
//
//   node bench/sdk/run.mjs          (or `npm run bench:sdk`, which builds first)
//
// Env: RUNS (cold runs per case, default 15), BENCH_FROM=dist|src (what to bundle, default dist).
// Writes bench/sdk/results.json and prints Markdown tables. Bundles are written to $TMPDIR/pgbind-bench-sdk/.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const sdkDir = path.join(root, "packages/sdk");
// Bundles go outside the repo so `biome check .` does not lint minified output.
const outRoot = path.join(os.tmpdir(), "pgbind-bench-sdk");

const RUNS = positiveInt(process.env.RUNS, 15);
const FROM = process.env.BENCH_FROM === "src" ? "src" : "dist";
const CORE_GZIP_TARGET = 6144; // bytes
const COLD_TARGET_MS = 20;
const GZIP_LEVEL = 9;
const CLOUD_SDKS = ["@aws-sdk/*", "@google-cloud/*", "@azure/*"];
const CLOUD_SDK_PATH = /(^|\/)node_modules\/(@aws-sdk|@google-cloud|@azure)\//;
// Modules the SDK loads with import() and that therefore must not be in the core path.
const LAZY_MODULES = ["kubernetes", "secrets/aws", "secrets/gcp", "secrets/azure"];

const localBinding = {
  service: "local",
  host: "127.0.0.1",
  port: 5432,
  database: "app",
  username: "postgres",
  password: "pw",
};

function positiveInt(value, fallback) {
  const n = Number.parseInt(value ?? "", 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

const rel = (p) => path.relative(root, p).split(path.sep).join("/");
const gzipBytes = (buf) => gzipSync(buf, { level: GZIP_LEVEL }).length;

// ---------------------------------------------------------------------------------------------------------------
// 1. Bundle size of the core path
// ---------------------------------------------------------------------------------------------------------------

async function measureBundle() {
  const sdkEntry = path.join(sdkDir, FROM, FROM === "dist" ? "index.js" : "index.ts");
  if (!existsSync(sdkEntry)) throw new Error(`${rel(sdkEntry)} is missing; run \`npm run build\` first`);
  const missing = ["aws", "gcp", "azure"]
    .map((s) => path.join(sdkDir, FROM, "secrets", `${s}.${FROM === "dist" ? "js" : "ts"}`))
    .filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `lazily imported modules are missing (not built/written yet?): ${missing.map(rel).join(", ")}`,
    );
  }

  rmSync(outRoot, { recursive: true, force: true });
  const entryDir = path.join(outRoot, "entry");
  const outdir = path.join(outRoot, "bundle");
  mkdirSync(entryDir, { recursive: true });
  const entry = path.join(entryDir, "app.js");
  // A tiny app that resolves a binding and hands it to both drivers.
  writeFileSync(
    entry,
    `import { getPostgresConnection, pgConfig, postgresOptions } from ${JSON.stringify(sdkEntry)};\n` +
      "export async function connect(name, env) {\n" +
      "  const conn = await getPostgresConnection(name, { env });\n" +
      "  return { pg: pgConfig(conn), postgres: postgresOptions(conn) };\n" +
      "}\n",
  );

  const result = await esbuild.build({
    absWorkingDir: root, // metafile paths are relative to this
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    splitting: true,
    outdir,
    chunkNames: "chunk-[hash]",
    external: ["node:*", ...CLOUD_SDKS],
    metafile: true,
    write: true,
    legalComments: "none",
    logLevel: "silent",
  });

  const outputs = result.metafile.outputs;
  const jsOutputs = Object.keys(outputs).filter((o) => o.endsWith(".js"));
  const entryOut = jsOutputs.find((o) => outputs[o].entryPoint);
  if (!entryOut) throw new Error("esbuild produced no entry chunk");

  // Core path: entry chunk plus everything it reaches through static imports (internal chunks only).
  const core = new Set();
  const queue = [entryOut];
  while (queue.length > 0) {
    const o = queue.shift();
    if (core.has(o)) continue;
    core.add(o);
    for (const imp of outputs[o].imports) {
      if (imp.kind === "import-statement" && !imp.external && outputs[imp.path]) queue.push(imp.path);
    }
  }
  const lazy = jsOutputs.filter((o) => !core.has(o));

  const sizeOf = (o) => {
    const buf = readFileSync(path.join(root, o));
    return { bytes: buf.length, gzip: gzipBytes(buf) };
  };
  const describe = (o) => ({
    file: path.join(root, o),
    ...sizeOf(o),
    modules: Object.keys(outputs[o].inputs).map(shortInput),
    externalImports: outputs[o].imports.filter((i) => i.external).map((i) => `${i.path} (${i.kind})`),
    // Cloud SDK package names in the chunk text: specifiers of runtime import()s esbuild cannot see (variables).
    cloudSdkMentions: [
      ...new Set(
        readFileSync(path.join(root, o), "utf8").match(/@(?:aws-sdk|google-cloud|azure)\/[a-z0-9-]+/g) ?? [],
      ),
    ],
  });
  const coreChunks = [...core].map(describe);
  const lazyChunks = lazy.map(describe);
  // Headline: every core chunk gzipped on its own and summed (how the files are served). For reference, the
  // core chunks concatenated and gzipped as one stream (slightly smaller: one header, shared dictionary).
  const coreBytes = coreChunks.reduce((n, c) => n + c.bytes, 0);
  const coreGzip = coreChunks.reduce((n, c) => n + c.gzip, 0);
  const coreGzipConcat = gzipBytes(Buffer.concat([...core].map((o) => readFileSync(path.join(root, o)))));

  // Contributors: bytesInOutput of every input module within the core chunks.
  const contrib = new Map();
  for (const o of core) {
    for (const [input, { bytesInOutput }] of Object.entries(outputs[o].inputs)) {
      contrib.set(input, (contrib.get(input) ?? 0) + bytesInOutput);
    }
  }
  const contributors = [...contrib]
    .map(([input, bytes]) => ({ module: shortInput(input), bytesInOutput: bytes }))
    .sort((a, b) => b.bytesInOutput - a.bytesInOutput);

  // Assertions: no cloud SDK code bundled anywhere; no cloud SDK referenced from the core path.
  const problems = [];
  for (const o of jsOutputs) {
    for (const input of Object.keys(outputs[o].inputs)) {
      if (CLOUD_SDK_PATH.test(input)) problems.push(`cloud SDK code bundled into ${o}: ${input}`);
    }
  }
  for (const input of Object.keys(result.metafile.inputs)) {
    if (CLOUD_SDK_PATH.test(input)) problems.push(`cloud SDK module reached by the bundler: ${input}`);
  }
  const isCloud = (spec) => /^(@aws-sdk|@google-cloud|@azure)\//.test(spec);
  for (const o of core) {
    for (const imp of outputs[o].imports) {
      if (isCloud(imp.path)) problems.push(`core chunk ${o} imports ${imp.path} (${imp.kind})`);
    }
  }
  for (const ch of coreChunks) {
    for (const m of ch.cloudSdkMentions) problems.push(`core chunk ${ch.file} references ${m}`);
  }
  if (problems.length > 0) {
    throw new Error(`cloud SDK assertion failed:\n  - ${problems.join("\n  - ")}`);
  }

  // Where did each module that should be lazy end up? And what does the core path import from node:*?
  const placement = {};
  for (const name of [...LAZY_MODULES, "probe"]) {
    const outs = jsOutputs.filter((o) => Object.keys(outputs[o].inputs).some((i) => shortInput(i) === name));
    placement[name] = outs.map((o) => (core.has(o) ? "core" : `lazy:${path.basename(o)}`));
  }
  const findings = [];
  for (const name of LAZY_MODULES) {
    if (placement[name].includes("core"))
      findings.push(`${name} is loaded with import() but ended up in the core path`);
    if (placement[name].length === 0) findings.push(`${name} is not in any chunk (not reachable?)`);
  }
  if (placement.probe.includes("core")) {
    findings.push(
      "probe (the sslmode=prefer TLS probe) is imported statically by resolver, so its code is in the core path; " +
        "only `node:net` itself is loaded at run time (a dynamic import() of an external builtin, not a chunk)",
    );
  }
  const coreNodeImports = [...core].flatMap((o) =>
    outputs[o].imports
      .filter((i) => i.external && i.path.startsWith("node:"))
      .map((i) => `${i.path} (${i.kind})`),
  );
  for (const i of coreNodeImports) {
    if (i.endsWith("(import-statement)")) findings.push(`core path statically imports ${i}`);
  }
  const warnings = result.warnings.map(
    (w) => `${w.location?.file ?? ""}:${w.location?.line ?? ""} ${w.text}`,
  );

  return {
    from: FROM,
    esbuild: esbuild.version,
    options: {
      bundle: true,
      minify: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      splitting: true,
      external: ["node:*", ...CLOUD_SDKS],
    },
    gzipLevel: GZIP_LEVEL,
    core: {
      bytes: coreBytes,
      gzip: coreGzip,
      gzipConcatenated: coreGzipConcat,
      target: CORE_GZIP_TARGET,
      pass: coreGzip <= CORE_GZIP_TARGET,
      chunks: coreChunks,
      nodeImports: coreNodeImports,
      sdkModules: contributors.map((m) => m.module).filter((m) => m !== "(bench entry)"),
    },
    lazyChunks,
    contributors,
    placement,
    findings,
    warnings,
  };
}

/** `packages/sdk/dist/secrets/aws.js` → `secrets/aws`; other inputs keep their relative path. */
function shortInput(input) {
  const m = /packages\/sdk\/(?:dist|src)\/(.+)\.(?:js|ts)$/.exec(input);
  if (m) return m[1];
  if (input.endsWith("entry/app.js")) return "(bench entry)";
  return input;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Cold import + resolve time (fresh node process per sample, SDK and baseline interleaved)
// ---------------------------------------------------------------------------------------------------------------

const bindingJson = JSON.stringify(localBinding);

const sdkScript = `
const binding = ${bindingJson};
const t0 = performance.now();
const { getPostgresConnection } = await import("@pgbind/sdk");
const conn = await getPostgresConnection("db", { env: { PGBIND_DB_BINDING: JSON.stringify(binding) } });
const ms = performance.now() - t0;
if (conn.host !== "127.0.0.1" || conn.port !== 5432 || conn.ssl !== false) throw new Error("unexpected connection");
process.stdout.write(JSON.stringify({ ms }));
`;

const baselineScript = `
const binding = ${bindingJson};
const t0 = performance.now();
const util = await import("node:util");
const parsed = JSON.parse(JSON.stringify(binding));
const ms = performance.now() - t0;
if (typeof util.format !== "function" || parsed.host !== "127.0.0.1") throw new Error("unexpected baseline");
process.stdout.write(JSON.stringify({ ms }));
`;

function fileBaselineScript(file) {
  return baselineScript
    .replace('import("node:util")', `import(${JSON.stringify(pathToFileURL(file).href)})`)
    .replace('typeof util.format !== "function"', "util.value !== 1");
}

function runOnce(script) {
  const start = performance.now();
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: root, // `@pgbind/sdk` resolves through the workspace link in node_modules (the built dist)
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  const wallMs = performance.now() - start;
  if (child.status !== 0) throw new Error(`child failed (${child.status}): ${child.stderr || child.stdout}`);
  const { ms } = JSON.parse(child.stdout);
  return { ms, wallMs };
}

function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median: round(median), min: round(s[0]), max: round(s[s.length - 1]) };
}

const round = (n, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

function measureCold() {
  // Second, informational baseline: the first import of a one-line user-land ES module file, i.e. the ESM
  // loader's fixed cost for a file (resolve, read, compile, link), which a builtin import does not pay.
  const trivial = path.join(outRoot, "cold", "trivial.mjs");
  mkdirSync(path.dirname(trivial), { recursive: true });
  writeFileSync(trivial, "export const value = 1;\n");
  const cases = [
    { key: "sdk", label: "SDK: import + getPostgresConnection", script: sdkScript },
    { key: "baseline", label: 'baseline: import("node:util") + JSON.parse', script: baselineScript },
    {
      key: "baselineFile",
      label: "info: import(one-line .mjs file) + JSON.parse",
      script: fileBaselineScript(trivial),
    },
  ];
  // One discarded warm-up round so the OS file cache holds node, the SDK dist and node_modules metadata.
  for (const c of cases) runOnce(c.script);
  const samples = Object.fromEntries(cases.map((c) => [c.key, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const c of cases) samples[c.key].push(runOnce(c.script)); // A B C A B C …
  }
  const summary = (c) => ({
    label: c.label,
    inProcessMs: stats(samples[c.key].map((r) => r.ms)),
    wallMs: stats(samples[c.key].map((r) => r.wallMs)),
    samples: samples[c.key].map((r) => ({ ms: round(r.ms, 3), wallMs: round(r.wallMs, 3) })),
  });
  const [sdk, baseline, baselineFile] = cases.map(summary);
  return {
    runs: RUNS,
    order:
      "interleaved A B C A B C … (A = SDK, B = baseline, C = file baseline), after 1 discarded warm-up round",
    target: COLD_TARGET_MS,
    pass: sdk.inProcessMs.median <= COLD_TARGET_MS,
    sdk,
    baseline,
    baselineFile,
    ratioMedian: round(sdk.inProcessMs.median / baseline.inProcessMs.median, 1),
    deltaMedianMs: round(sdk.inProcessMs.median - baseline.inProcessMs.median),
    ratioMedianVsFile: round(sdk.inProcessMs.median / baselineFile.inProcessMs.median, 1),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------------

function machine() {
  const cpus = os.cpus();
  return {
    nproc: typeof os.availableParallelism === "function" ? os.availableParallelism() : cpus.length,
    cpu: cpus[0]?.model?.trim() ?? "unknown",
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    // 1/5/15-minute load averages at the end of the run: other work on this 2-core box skews cold timings.
    loadavg: os.loadavg().map((n) => round(n)),
  };
}

function markdown(r) {
  const { bundle: b, cold: c } = r;
  const pf = (ok) => (ok ? "PASS" : "FAIL");
  const range = (x) => `${x.median} ms (${x.min}–${x.max})`;
  const lines = [];
  lines.push(
    `## @pgbind/sdk core path (${r.date}, ${r.machine.nproc} cores, Node ${r.machine.node}, load ${r.machine.loadavg.join(" ")})`,
    "",
  );
  lines.push("| Metric | Value | Target | Result |", "|---|---:|---:|:---:|");
  lines.push(
    `| Core path, minified (${b.core.chunks.length} chunks, ${b.core.sdkModules.length} SDK modules) | ${b.core.bytes} B | | |`,
  );
  lines.push(
    `| Core path, gzip -9 (per chunk, summed) | ${b.core.gzip} B | ≤ ${b.core.target} B | ${pf(b.core.pass)} |`,
  );
  lines.push(`| Core path, gzip -9 (chunks concatenated) | ${b.core.gzipConcatenated} B | | |`);
  lines.push(`| Lazy chunks, gzip -9 (total) | ${b.lazyChunks.reduce((n, x) => n + x.gzip, 0)} B | | |`);
  lines.push(
    `| Cold import + resolve, median (min–max) | ${range(c.sdk.inProcessMs)} | ≤ ${c.target} ms | ${pf(c.pass)} |`,
  );
  lines.push(
    `| Baseline import("node:util") + JSON.parse, median (min–max) | ${range(c.baseline.inProcessMs)} | | |`,
  );
  lines.push(`| SDK / baseline (medians) | ${c.ratioMedian}× (+${c.deltaMedianMs} ms) | | |`);
  lines.push("");
  lines.push(
    `Cold runs: ${c.runs} per case, ${c.order}. In-process = performance.now() around import + call; wall = spawn to exit of \`node -e\`.`,
    "",
  );
  lines.push("| Case | in-process median | min | max | process wall median | min | max |");
  lines.push("|---|---:|---:|---:|---:|---:|---:|");
  for (const s of [c.sdk, c.baseline, c.baselineFile]) {
    lines.push(
      `| ${s.label} | ${s.inProcessMs.median} ms | ${s.inProcessMs.min} | ${s.inProcessMs.max} | ${s.wallMs.median} ms | ${s.wallMs.min} | ${s.wallMs.max} |`,
    );
  }
  lines.push("", "| Chunk | Kind | Modules | Minified | Gzip |", "|---|---|---|---:|---:|");
  for (const [kind, list] of [
    ["core", b.core.chunks],
    ["lazy", b.lazyChunks],
  ]) {
    for (const ch of list) {
      const refs = [...ch.externalImports, ...ch.cloudSdkMentions.map((m) => `"${m}"`)];
      const ext = refs.length > 0 ? ` → ${refs.join(", ")}` : "";
      lines.push(
        `| ${path.basename(ch.file)} | ${kind} | ${ch.modules.join(", ")}${ext} | ${ch.bytes} | ${ch.gzip} |`,
      );
    }
  }
  lines.push("", "| Core contributor (metafile bytesInOutput) | Bytes |", "|---|---:|");
  for (const m of b.contributors) lines.push(`| ${m.module} | ${m.bytesInOutput} |`);
  if (b.findings.length > 0 || b.warnings.length > 0) {
    lines.push("", "Findings:");
    for (const f of [...b.findings, ...b.warnings.map((w) => `esbuild warning: ${w}`)]) lines.push(`- ${f}`);
  }
  return lines.join("\n");
}

const bundle = await measureBundle();
const cold = measureCold();
const results = {
  date: new Date().toISOString().slice(0, 10),
  machine: machine(),
  bundle,
  cold,
};
const resultsFile = path.join(here, "results.json");
writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
// Match the repo's formatter so `npm run lint` stays clean (best effort).
spawnSync(path.join(root, "node_modules/.bin/biome"), ["format", "--write", resultsFile], {
  cwd: root,
  stdio: "ignore",
});
console.log(markdown(results));
console.log(`\nWrote ${rel(resultsFile)}; bundles in ${outRoot}`);
