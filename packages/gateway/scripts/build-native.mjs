#!/usr/bin/env node
// Builds the gateway's native socket layer (native/socket_io.c) with node-gyp against this Node's
// own headers. It is optional: without a C compiler the gateway runs on Node's sockets, so a failed
// build warns and exits 0. Tests check that it is built where a compiler exists.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

const native = path.resolve(import.meta.dirname, "../native");
const prefix = path.resolve(path.dirname(process.execPath), "..");

/** node-gyp: on PATH inside npm scripts, else the copy bundled with npm. */
function nodeGyp() {
  const bundled = path.join(prefix, "lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js");
  const probe = spawnSync("node-gyp", ["--version"], { stdio: "ignore" });
  if (probe.status === 0) return { command: "node-gyp", prefixArgs: [] };
  if (existsSync(bundled)) return { command: process.execPath, prefixArgs: [bundled] };
  return undefined;
}

const gyp = nodeGyp();
if (!gyp) {
  console.warn("pgbind gateway: node-gyp not found; the gateway will use Node's sockets");
  process.exit(0);
}
const args = [...gyp.prefixArgs, existsSync(path.join(native, "build/Makefile")) ? "build" : "rebuild"];
// Build against the headers next to this Node (no download): npm's nodedir setting wins if present.
if (!process.env.npm_config_nodedir && existsSync(path.join(prefix, "include/node/node_api.h"))) {
  args.push(`--nodedir=${prefix}`);
}
const result = spawnSync(gyp.command, args, { cwd: native, encoding: "utf8" });
if (result.status !== 0) {
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
  console.warn(
    `pgbind gateway: native socket layer not built; the gateway will use Node's sockets\n${output}`,
  );
}
