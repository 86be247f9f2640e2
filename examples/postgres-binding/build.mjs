// Bundles the backend the way a W7S deploy expects it: dist/server/index.js plus the runtime
// compatibility metadata beside it (postgres.js imports net, tls and crypto: nodejs_compat_v2).
import { mkdir, writeFile } from "node:fs/promises";
import { build } from "esbuild";

const outdir = new URL("./dist/server/", import.meta.url);
await mkdir(outdir, { recursive: true });
await build({
  entryPoints: [new URL("./src/index.ts", import.meta.url).pathname],
  outfile: new URL("index.js", outdir).pathname,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  logLevel: "warning",
});
await writeFile(
  new URL("wrangler.json", outdir),
  `${JSON.stringify({ compatibility_date: "2025-09-01", compatibility_flags: ["nodejs_compat_v2"] }, null, 2)}\n`,
);
console.log("built dist/server/index.js and dist/server/wrangler.json");
