#!/usr/bin/env node
// pgbind dev start-up: time from spawning `pgbind dev -- <command>` until the command runs, cold
// (--fresh: initdb + first start) and warm (existing cluster), against a baseline measured in the
// same run: spawning the same command directly. Interleaved, medians of RUNS (default 7) runs.
// Usage: npm run build && node bench/dev/run.mjs
import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "../..");
const pgbind = path.join(root, "node_modules/.bin/pgbind");
const runs = Number(process.env.RUNS ?? 7);
const marker = [process.execPath, "-e", "process.stdout.write('up')"];

function timeUntilMarker(file, args, cwd) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH },
    });
    let seen;
    let stderr = "";
    child.stdout.on("data", (d) => {
      if (seen === undefined && d.toString().includes("up")) seen = performance.now() - started;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("close", (code) => {
      const total = performance.now() - started;
      if (code !== 0 || seen === undefined) reject(new Error(`exit ${code}: ${stderr}`));
      else resolve({ toCommand: seen, total });
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const dir = await mkdtemp(path.join(os.tmpdir(), "pgbind-bench-dev-"));
await chmod(dir, 0o755);
await writeFile(
  path.join(dir, "w7s.json"),
  JSON.stringify({ bindings: { hyperdrive: [{ binding: "DB", id: "bench" }] } }),
);
const samples = { baseline: [], cold: [], warm: [], coldTotal: [], warmTotal: [] };
try {
  for (let i = 0; i < runs; i++) {
    samples.baseline.push((await timeUntilMarker(marker[0], marker.slice(1), dir)).toCommand);
    const cold = await timeUntilMarker(pgbind, ["dev", "--fresh", "--", ...marker], dir);
    samples.cold.push(cold.toCommand);
    samples.coldTotal.push(cold.total);
    const warm = await timeUntilMarker(pgbind, ["dev", "--", ...marker], dir);
    samples.warm.push(warm.toCommand);
    samples.warmTotal.push(warm.total);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
const fmt = (ms) => `${(ms / 1000).toFixed(2)} s`;
const base = median(samples.baseline);
const rows = [
  ["baseline: spawn the command directly", base, undefined, undefined],
  [
    "cold: `pgbind dev --fresh -- cmd` (initdb + start)",
    median(samples.cold),
    3000,
    median(samples.coldTotal),
  ],
  ["warm: `pgbind dev -- cmd` (existing cluster)", median(samples.warm), 1500, median(samples.warmTotal)],
];
console.log(
  `## pgbind dev start-up (${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, Node ${process.version}, ${runs} runs each, interleaved)\n`,
);
console.log(
  "| Case | to command running (median) | × baseline | target | result | whole run incl. stop (median) |",
);
console.log("|---|---:|---:|---:|:---:|---:|");
for (const [label, value, target, total] of rows) {
  console.log(
    `| ${label} | ${fmt(value)} | ${(value / base).toFixed(1)}× | ${target ? `≤ ${fmt(target)}` : ""} | ${target ? (value <= target ? "PASS" : "FAIL") : ""} | ${total ? fmt(total) : ""} |`,
  );
}
