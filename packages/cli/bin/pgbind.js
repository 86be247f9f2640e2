#!/usr/bin/env node
// A committed shim, so npm links the bin at install time, before `npm run build` creates dist/.
import { existsSync } from "node:fs";

const main = new URL("../dist/main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write("pgbind: the CLI is not built yet; run `npm run build` in the repository root\n");
  process.exit(2);
}
await import(main.href);
