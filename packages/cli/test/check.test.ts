import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { build } from "esbuild";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { checkProject } from "../src/commands/check.ts";
import { analyzeEntry, SUPPORTED_COMPATIBILITY_FLAGS, validateCompatibility } from "../src/compat.ts";
import { CliError } from "../src/errors.ts";

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, "../../..");

const MANIFEST = JSON.stringify({
  $schema: "./node_modules/pgbind/schema/w7s.schema.json",
  bindings: { hyperdrive: [{ binding: "DB", id: "postgres-binding-id" }] },
});
const HANDLER = `export default { async fetch() { return new Response("ok"); } };\n`;
const NET_HANDLER = `import net from "node:net";\nexport default { fetch: () => new Response(String(net.isIP("::1"))) };\n`;
const WRANGLER = JSON.stringify({
  compatibility_flags: ["nodejs_compat_v2"],
  compatibility_date: "2025-09-01",
});
const NO_FLAG = `dist/server/index.js imports Node built-ins (net) but dist/server/wrangler.json has no "nodejs_compat" or "nodejs_compat_v2" flag; add "compatibility_flags": ["nodejs_compat_v2"]`;

/** What a user's build emits: a backend using postgres.js, bundled by esbuild for Node as ESM. */
async function bundle(contents: string): Promise<string> {
  const result = await build({
    stdin: { contents, resolveDir: root, loader: "js" },
    bundle: true,
    platform: "node",
    format: "esm",
    write: false,
    logLevel: "silent",
    external: ["pg-native"],
  });
  return result.outputFiles[0]?.text ?? assert.fail("esbuild wrote nothing");
}

/** The usual layout: w7s.json, dist/server/index.js and dist/server/wrangler.json; null leaves one out. */
function files(entry: string | null, wrangler: string | null = WRANGLER, manifest: string | null = MANIFEST) {
  const all: Record<string, string> = {};
  if (manifest !== null) all["w7s.json"] = manifest;
  if (entry !== null) all["dist/server/index.js"] = entry;
  if (wrangler !== null) all["dist/server/wrangler.json"] = wrangler;
  return all;
}

const dirs: Awaited<ReturnType<typeof makeTempDir>>[] = [];
/** A project in a fresh temp dir: paths relative to it → contents. */
async function project(files: Record<string, string>): Promise<string> {
  const dir = await makeTempDir("check");
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir.path, name)), { recursive: true });
    await writeFile(path.join(dir.path, name), text);
  }
  return dir.path;
}
after(() => Promise.all(dirs.map((dir) => dir.remove())));

/** Runs the real `pgbind` bin, as `npx pgbind` does. */
async function pgbind(args: string[], cwd: string) {
  try {
    const { stdout, stderr } = await run(path.join(root, "node_modules/.bin/pgbind"), args, {
      cwd,
      env: { PATH: process.env.PATH },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let postgresBundle = "";
before(async () => {
  postgresBundle = await bundle(
    `import postgres from "postgres";
     export default { async fetch(request, env) { const sql = postgres(env.DB.connectionString); return Response.json(await sql\`select 1\`); } };`,
  );
});

describe("analyzeEntry", () => {
  it("finds static, dynamic and require()d built-ins, with or without node:, in order", async () => {
    const source = `import net from "node:net";
      import { x } from "./local.js";
      import pkg from "some-package";
      export * from "node:events";
      const tls = await import("tls");
      const crypto = require("crypto"), dns = __require('node:dns'), os = process.getBuiltinModule("os");
      require.resolve("fs"); foo.require("path"); import(\`./locale/\${lang}.js\`); import.meta.url;
      export default { fetch() {} };`;
    const analysis = await analyzeEntry(source, "index.js");
    assert.deepEqual(analysis, {
      isModule: true,
      hasDefaultExport: true,
      builtins: ["net", "events", "tls", "crypto", "dns", "os"],
    });
  });

  it("finds the built-ins in real esbuild bundles (import statements and __require calls)", async () => {
    const postgresJs = await analyzeEntry(postgresBundle, "index.js");
    assert.equal(postgresJs.hasDefaultExport, true);
    for (const name of ["net", "tls", "crypto", "stream"])
      assert.ok(postgresJs.builtins.includes(name), name);
    const pg = await analyzeEntry(await bundle(`import pg from "pg"; export default { pg };`), "index.js");
    for (const name of ["net", "tls", "crypto", "dns"]) assert.ok(pg.builtins.includes(name), name);
  });

  it("tells ES modules with a default export from the rest", async () => {
    const cases: [string, boolean, boolean][] = [
      ["function h() {}\nexport { h as default };", true, true],
      ["export { default } from './handler.js';", true, true],
      ["export * from './handler.js';", true, false],
      ["export const fetch = () => {};", true, false],
      ["module.exports = { fetch() {} };", false, false],
      ["", false, false],
    ];
    for (const [source, isModule, hasDefaultExport] of cases) {
      const analysis = await analyzeEntry(source, "index.js");
      assert.deepEqual([analysis.isModule, analysis.hasDefaultExport], [isModule, hasDefaultExport], source);
    }
  });

  it("reports a syntax error with line:column", async () => {
    const error = await analyzeEntry(
      'export default {};\nimport { a } from "x";\nconst s = "',
      "index.js",
    ).catch((e: unknown) => e);
    assert.ok(error instanceof CliError);
    assert.equal(error.code, "ENTRY_INVALID");
    assert.match(error.message, /^index\.js: not valid JavaScript \(syntax error at 3:\d+\)$/);
  });
});

describe("validateCompatibility", () => {
  it("accepts every supported flag and a real date", () => {
    for (const flag of SUPPORTED_COMPATIBILITY_FLAGS) {
      const result = validateCompatibility(
        { compatibility_flags: [flag], compatibility_date: "2024-02-29" },
        "w.json",
        true,
      );
      assert.deepEqual(result, {
        compatibility: { path: "w.json", flags: [flag], date: "2024-02-29" },
        problems: [],
      });
    }
    assert.deepEqual(validateCompatibility({ name: "app", main: "index.js" }, "w.json", false).problems, []);
  });

  it("reports every problem in one message", () => {
    const value = {
      compatibility_flags: ["nodejs_compat_v3", 2, "nodejs_compat_v2", "no_nodejs_compat_v2"],
      compatibility_date: "2025-02-30",
      main: "x",
    };
    const { problems } = validateCompatibility(value, "dist/server/compatibility.json", true);
    assert.deepEqual(problems, [
      {
        code: "COMPATIBILITY_INVALID",
        message: `dist/server/compatibility.json: invalid compatibility metadata:
  main: unknown key; allowed: compatibility_flags, compatibility_date
  compatibility_flags[0]: unknown flag "nodejs_compat_v3"; supported: nodejs_compat, nodejs_compat_v2, nodejs_als, no_nodejs_compat_v2
  compatibility_flags[1]: must be a string, e.g. "nodejs_compat_v2"
  compatibility_flags: "nodejs_compat_v2" and "no_nodejs_compat_v2" contradict; keep one
  compatibility_date: "2025-02-30" is not a real date written YYYY-MM-DD, e.g. "2025-09-01"`,
      },
    ]);
    const shapes = validateCompatibility(
      { compatibility_flags: "nodejs_compat", compatibility_date: 20250901 },
      "w.json",
      false,
    );
    assert.equal(
      shapes.problems[0]?.message,
      `w.json: invalid compatibility metadata:
  compatibility_flags: must be an array of strings, e.g. ["nodejs_compat_v2"]
  compatibility_date: 20250901 is not a real date written YYYY-MM-DD, e.g. "2025-09-01"`,
    );
    assert.equal(
      validateCompatibility([], "w.json", false).problems[0]?.message,
      "w.json: must be a JSON object",
    );
  });
});

describe("checkProject", () => {
  it("returns what it found, paths relative to the project, for reuse by serve", async () => {
    const dir = await project(files(NET_HANDLER));
    assert.deepEqual(await checkProject({ dir }), {
      ok: true,
      manifest: { path: "w7s.json", bindings: [{ binding: "DB", id: "postgres-binding-id" }] },
      entry: { path: "dist/server/index.js", isModule: true, hasDefaultExport: true, builtins: ["net"] },
      compatibility: { path: "dist/server/wrangler.json", flags: ["nodejs_compat_v2"], date: "2025-09-01" },
      problems: [],
    });
  });
});

describe("pgbind check", { concurrency: true }, () => {
  it("passes a valid project and prints a summary", async () => {
    const dir = await project(files(NET_HANDLER));
    const result = await pgbind(["check"], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      `manifest  w7s.json: DB → postgres-binding-id
entry     dist/server/index.js (default export; Node built-ins: net)
flags     nodejs_compat_v2 (dist/server/wrangler.json, compatibility date 2025-09-01)
ok
`,
    );
    assert.equal(result.stderr, "");
  });

  it("passes a real postgres.js bundle with compatibility.json instead of wrangler.json", async () => {
    const dir = await project({
      "w7s.json": MANIFEST,
      "dist/server/index.js": postgresBundle,
      "dist/server/compatibility.json": JSON.stringify({ compatibility_flags: ["nodejs_compat"] }),
    });
    const result = await pgbind(["check"], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^entry +dist\/server\/index\.js \(default export; Node built-ins: .*\bnet\b.*\)$/m,
    );
    assert.match(result.stdout, /^flags +nodejs_compat \(dist\/server\/compatibility\.json\)$/m);
  });

  it("rejects a postgres.js bundle whose metadata lacks nodejs_compat", async () => {
    const dir = await project(files(postgresBundle, '{"compatibility_flags": ["nodejs_als"]}'));
    const result = await pgbind(["check"], dir);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^pgbind check: dist\/server\/index\.js imports Node built-ins \((\w+, )*net, tls, crypto(, \w+)*\) but dist\/server\/wrangler\.json has no "nodejs_compat" or "nodejs_compat_v2" flag; add "compatibility_flags": \["nodejs_compat_v2"\]\n$/,
    );
  });

  it("names each problem exactly and exits 2", async () => {
    const cases: [Record<string, string>, string][] = [
      [files(null), "dist/server/index.js not found; build the backend first, or pass --entry <file>"],
      [
        files("export const fetch = () => {};"),
        "dist/server/index.js has no default export; the backend must export its handler: export default { fetch }",
      ],
      [
        files("module.exports = {};"),
        'dist/server/index.js is not an ES module (no import or export statement); build it with format "esm" and export the handler: export default { fetch }',
      ],
      [
        files(HANDLER, '{"compatibility_flags": ["nodejs_compat_v3"]}'),
        'dist/server/wrangler.json: invalid compatibility metadata:\n  compatibility_flags[0]: unknown flag "nodejs_compat_v3"; supported: nodejs_compat, nodejs_compat_v2, nodejs_als, no_nodejs_compat_v2',
      ],
      [
        files(HANDLER, '{"compatibility_flags": [}'),
        "dist/server/wrangler.json: invalid JSON at 1:26: Unexpected token '}'",
      ],
      [files(NET_HANDLER, "{}"), NO_FLAG],
      [
        { ...files(HANDLER), "dist/server/compatibility.json": "{}" },
        "both dist/server/wrangler.json and dist/server/compatibility.json exist; keep only one of them",
      ],
      [
        files(NET_HANDLER, null),
        'dist/server/index.js imports Node built-ins (net) but there is no dist/server/wrangler.json or dist/server/compatibility.json; add dist/server/wrangler.json with {"compatibility_flags": ["nodejs_compat_v2"]}',
      ],
      [
        files(HANDLER, null, null),
        "w7s.json not found; create it, or pass --manifest <file> to use another manifest",
      ],
      [
        files(HANDLER, null, '{"bindings": {"hyperdrive": [{"binding": "my-db"}]}}'),
        'w7s.json: invalid manifest:\n  bindings.hyperdrive[0].binding: "my-db" is not a valid identifier; use e.g. MY_DB\n  bindings.hyperdrive[0].id: must be a non-empty string',
      ],
    ];
    await Promise.all(
      cases.map(async ([files, message]) => {
        const result = await pgbind(["check"], await project(files));
        assert.equal(result.code, 2, message);
        assert.equal(result.stdout, "");
        assert.equal(result.stderr, `pgbind check: ${message}\n`);
      }),
    );
  });

  it("reports the problems of all three parts at once", async () => {
    const entry = `import net from "net";\nexport const handler = {};\n`;
    const dir = await project(files(entry, '{"compatibility_date": "2025-9-1"}', '{"bindings": {"kv": []}}'));
    const result = await pgbind(["check"], dir);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `pgbind check: w7s.json: invalid manifest:
  bindings.kv: unknown binding kind; pgbind supports: hyperdrive
pgbind check: dist/server/index.js has no default export; the backend must export its handler: export default { fetch }
pgbind check: dist/server/wrangler.json: invalid compatibility metadata:
  compatibility_date: "2025-9-1" is not a real date written YYYY-MM-DD, e.g. "2025-09-01"
pgbind check: ${NO_FLAG}
`,
    );
  });

  it("prints { ok, manifest, entry, compatibility, problems } with --json", async () => {
    const dir = await project(files(HANDLER));
    const ok = await pgbind(["check", "--json"], dir);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), {
      ok: true,
      manifest: { path: "w7s.json", bindings: [{ binding: "DB", id: "postgres-binding-id" }] },
      entry: { path: "dist/server/index.js", isModule: true, hasDefaultExport: true, builtins: [] },
      compatibility: { path: "dist/server/wrangler.json", flags: ["nodejs_compat_v2"], date: "2025-09-01" },
      problems: [],
    });
    const failed = await pgbind(["check", "--json"], await project({ "w7s.json": "[]" }));
    assert.equal(failed.code, 2);
    assert.deepEqual(JSON.parse(failed.stdout), {
      ok: false,
      manifest: null,
      entry: null,
      compatibility: null,
      problems: [
        {
          code: "MANIFEST_INVALID",
          message: `w7s.json: invalid manifest:\n  (root): must be an object like {"bindings": {"hyperdrive": []}}`,
        },
        {
          code: "ENTRY_NOT_FOUND",
          message: "dist/server/index.js not found; build the backend first, or pass --entry <file>",
        },
      ],
    });
  });

  it("takes the project directory, --manifest and --entry relative to where it runs", async () => {
    const dir = await project({
      "app/w7s.json": MANIFEST,
      "app/build/worker.js": NET_HANDLER,
      "app/build/wrangler.json": WRANGLER,
      "config/prod.json": '{"bindings": {"hyperdrive": [{"binding": "PROD_DB", "id": "prod"}]}}',
    });
    const byDir = await pgbind(["check", "app", "--entry", "app/build/worker.js"], dir);
    assert.equal(byDir.code, 0, byDir.stderr);
    assert.match(byDir.stdout, /^manifest +app\/w7s\.json: DB → postgres-binding-id$/m);
    assert.match(byDir.stdout, /^flags +nodejs_compat_v2 \(app\/build\/wrangler\.json, /m);
    const flags = await pgbind(
      ["check", "app", "--manifest", "config/prod.json", "--entry", "app/build/worker.js"],
      dir,
    );
    assert.equal(flags.code, 0, flags.stderr);
    assert.match(flags.stdout, /^manifest +config\/prod\.json: PROD_DB → prod$/m);
    const outside = await pgbind(["check", path.join(dir, "app")], root);
    assert.equal(outside.code, 2);
    assert.equal(
      outside.stderr,
      `pgbind check: ${path.join(dir, "app/dist/server/index.js")} not found; build the backend first, or pass --entry <file>\n`,
    );
  });

  it("exits 2 on a bad command line", async () => {
    const extra = await pgbind(["check", "a", "b"], root);
    assert.equal(extra.code, 2);
    assert.match(
      extra.stderr,
      /^pgbind check: expected at most one project directory\nUsage: pgbind check \[dir\]/,
    );
    assert.equal((await pgbind(["check", "--bogus"], root)).code, 2);
    assert.equal((await pgbind(["check", "--entry"], root)).code, 2);
  });
});
