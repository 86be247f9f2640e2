import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { access } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, "..");

// `npm test` builds first; these check what a user of the packages gets: plain Node 20, no tsx.
describe("packaging", () => {
  for (const [name, exports] of [
    [
      "@pgbind/sdk",
      ["getPostgresConnection", "pgConfig", "postgresOptions", "PgBindError", "BindingResolver"],
    ],
    ["@pgbind/local-postgres", ["LocalPostgres", "LocalPostgresError"]],
    ["pgbind", ["runCli"]],
  ] as const) {
    it(`${name} is importable by plain Node by its name, with type declarations`, async () => {
      const script = `const m = await import(${JSON.stringify(name)}); console.log(JSON.stringify(Object.keys(m)))`;
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
        cwd: root,
        env: { PATH: process.env.PATH },
      });
      const keys = JSON.parse(stdout) as string[];
      for (const key of exports) assert.ok(keys.includes(key), `${name} should export ${key}`);
      const dir = name === "pgbind" ? "cli" : name.replace("@pgbind/", "");
      await access(path.join(root, "packages", dir, "dist", "index.d.ts"));
    });
  }
});
