#!/usr/bin/env node
// Gateway benchmark: pgbench through the pgbind gateway against PgBouncer (Debian package) and a direct
// connection, all three measured in the same run against one origin PostgreSQL (embedded binaries).
// Runs are interleaved (for each repetition and case: direct, pgbouncer, gateway), medians reported;
// then the idle-client memory of each pooler (RSS at 1,000 and 5,000 authenticated idle clients).
//
//   npm run build && node bench/gateway/run.mjs
//
// Env: POOL (server connections per pooler, default 20), REPS (default 3), DURATION (s per pgbench run,
// default 10), SCALE (pgbench -s, default 10), CASES (comma-separated case ids, default all), IDLE
// (idle-client levels, default "1000,5000"; "0" skips the memory part), GATEWAY=0 (skip the gateway
// even when built), PROFILE=1 (run the gateway under --cpu-prof; PROFILE_DIR, default a temp dir),
// QUIET_WAIT (max s to wait for a quiet machine before each run, default 60), RETRIES (re-runs of a run
// disturbed by other processes, default 1), PGBIND_BIN (the pgbind to test), PGBENCH (the pgbench binary),
// RESULTS (the results file in bench/gateway, default results.json: name another for a partial run),
// WARMUP (s of unmeasured pgbench per case and target before the measured repetitions, default 0).
// Needs pgbench and pgbouncer (Debian 12: apt-get install pgbouncer postgresql-client; pgbench ships in
// postgresql-15).
// Writes bench/gateway/results.json (or $RESULTS) and prints Markdown tables. See bench/gateway/README.md.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
} from "node:fs";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  BackendMessage,
  buildPasswordMessage,
  buildSASLInitialResponse,
  buildSASLResponse,
  buildStartupMessage,
  MessageFramer,
  md5PasswordHash,
  parseAuthentication,
  parseErrorResponse,
  parseParameterStatus,
  ScramClientSession,
  ScramKeyCache,
  TERMINATE,
} from "@pgbind/protocol";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const thisFile = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------------------------
// Idle-client connector. Runs in a child process (`node run.mjs --idle-connector`) so its 5,000 sockets
// neither count against the harness's descriptors nor share its event loop; driven over IPC.
// ---------------------------------------------------------------------------------------------------------------

/**
 * Opens one client connection and authenticates (SCRAM-SHA-256, MD5 or cleartext, whatever the server
 * asks), resolving at the first ReadyForQuery with the socket (left open and idle) and the
 * ParameterStatus values received.
 */
function openClient({ host, port, user, password, database }, cache, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    const framer = new MessageFramer();
    const params = {};
    let scram;
    let ready = false;
    const timer = setTimeout(() => fail(new Error(`no ReadyForQuery within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error) => {
      clearTimeout(timer);
      socket.destroy();
      if (!ready) reject(error);
    };
    socket.once("connect", () => {
      socket.write(buildStartupMessage({ user, database, application_name: "pgbind-bench-idle" }));
    });
    socket.on("data", (chunk) => {
      try {
        framer.push(chunk, onFrame);
      } catch (error) {
        fail(error);
      }
    });
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed during start-up")));
    function onFrame(frame) {
      switch (frame.code) {
        case BackendMessage.Authentication: {
          const auth = parseAuthentication(frame);
          if (auth.type === "SASL") {
            scram = new ScramClientSession(password, { cache });
            const first = scram.clientFirst(auth.mechanisms);
            socket.write(buildSASLInitialResponse(first.mechanism, first.data));
          } else if (auth.type === "SASLContinue") {
            socket.write(buildSASLResponse(scram.handleServerFirst(auth.data)));
          } else if (auth.type === "SASLFinal") {
            scram.verifyServerFinal(auth.data);
          } else if (auth.type === "MD5Password") {
            socket.write(buildPasswordMessage(md5PasswordHash(user, password, auth.salt)));
          } else if (auth.type === "CleartextPassword") {
            socket.write(buildPasswordMessage(password));
          } else if (auth.type !== "Ok") {
            throw new Error(`unsupported authentication request ${auth.type}`);
          }
          break;
        }
        case BackendMessage.ParameterStatus: {
          const { name, value } = parseParameterStatus(frame);
          params[name] = value;
          break;
        }
        case BackendMessage.ErrorResponse: {
          const e = parseErrorResponse(frame);
          throw new Error(`${e.severity} ${e.code}: ${e.message}`);
        }
        case BackendMessage.ReadyForQuery:
          if (!ready) {
            ready = true;
            clearTimeout(timer);
            resolve({ socket, params });
          }
          break;
        default:
          break; // BackendKeyData, NoticeResponse, …
      }
    }
  });
}

async function runConnector() {
  const cache = new ScramKeyCache();
  const sockets = new Set();
  let droppedWhileIdle = 0;
  process.on("message", async (msg) => {
    if (msg.op === "open") {
      const started = performance.now();
      let ok = 0;
      const errors = [];
      let next = 0;
      const worker = async () => {
        while (next < msg.count) {
          next++;
          try {
            const { socket } = await openClient(msg.target, cache);
            socket.removeAllListeners("close");
            socket.on("error", () => {});
            socket.on("close", () => {
              if (sockets.delete(socket)) droppedWhileIdle++;
            });
            sockets.add(socket);
            ok++;
          } catch (error) {
            errors.push(String(error?.message ?? error));
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(msg.concurrency ?? 64, msg.count) }, worker));
      process.send({
        op: "opened",
        ok,
        failed: errors.length,
        errors: [...new Set(errors)].slice(0, 5),
        open: sockets.size,
        droppedWhileIdle,
        ms: performance.now() - started,
      });
    } else if (msg.op === "close") {
      const all = [...sockets];
      sockets.clear();
      for (const socket of all) socket.end(TERMINATE);
      setTimeout(() => {
        for (const socket of all) socket.destroy();
        process.send({ op: "closed", count: all.length });
      }, 500);
    } else if (msg.op === "exit") {
      process.exit(0);
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send({ op: "ready" });
}

// ---------------------------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------------------------

async function main() {
  const { LocalPostgres, freePort, randomPassword, resolveRuntime } = await import("@pgbind/local-postgres");
  const pg = (await import("pg")).default;

  const POOL = positiveInt(process.env.POOL, 20);
  const resultsName = process.env.RESULTS ?? "results.json";
  if (!/^[\w.-]+\.json$/.test(resultsName))
    throw new Error(
      `RESULTS must be a file name ending in .json (no directory), got ${JSON.stringify(resultsName)}`,
    );
  const REPS = positiveInt(process.env.REPS, 3);
  const DURATION = positiveInt(process.env.DURATION, 10);
  // The gateway is JavaScript: a code path it has not run yet is unoptimized for its first seconds, which
  // a long-running deployment never sees. WARMUP runs each case on each target once, unmeasured.
  const warmupText = process.env.WARMUP ?? "0";
  if (!/^\d{1,4}$/.test(warmupText))
    throw new Error(`WARMUP must be whole seconds from 0 (none) to 9999, got ${JSON.stringify(warmupText)}`);
  const WARMUP = Number(warmupText);
  const SCALE = positiveInt(process.env.SCALE, 10);
  const IDLE_LEVELS = (process.env.IDLE ?? "1000,5000")
    .split(",")
    .map((s) => Number.parseInt(s, 10))
    .filter((n) => n > 0)
    .sort((a, b) => a - b);
  const PROFILE = process.env.PROFILE === "1";
  const MAX_CLIENT_CONN = 6000;
  const SETTLE_MS = 300; // after each pgbench run, before the CPU counters are read again
  const DISTURBED_CORES = 0.25;
  const QUIET_WAIT_S = positiveInt(process.env.QUIET_WAIT, 60); // max wait for a quiet machine before a run
  const RETRIES = Number.parseInt(process.env.RETRIES ?? "1", 10) || 0; // re-runs of a disturbed run // a run during which other processes used more CPU than this is flagged
  const FD_NEED = Math.max(MAX_CLIENT_CONN, ...IDLE_LEVELS) + POOL + 1000;
  const BENCH_USER = "bench";
  const BENCH_DB = "bench";

  // Targets from the issue, applied to the gateway rows.
  const TARGET_MIN_RATIO = 0.8; // × PgBouncer TPS, -S at 50 clients, simple and extended (aim ≥ 1.0)
  const TARGET_CONNECT_RATIO = 1.0; // × PgBouncer TPS, -S -C
  const TARGET_KIB_PER_IDLE = 10; // at 5,000 idle clients

  /** The pgbench cases; `args` go before the database name. */
  const ALL_CASES = [
    ...[1, 10, 50, 100].flatMap((clients) =>
      ["simple", "extended"].map((mode) => ({
        id: `S-${mode}-c${clients}`,
        label: `-S -M ${mode}`,
        clients,
        args: ["-S", "-M", mode],
      })),
    ),
    { id: "S-prepared-c50", label: "-S -M prepared", clients: 50, args: ["-S", "-M", "prepared"] },
    { id: "S-connect-c10", label: "-S -C (connect per transaction)", clients: 10, args: ["-S", "-C"] },
    { id: "tpcb-c10", label: "TPC-B (default script)", clients: 10, args: [] },
  ];
  const caseFilter = process.env.CASES?.split(",").map((s) => s.trim());
  const CASES = caseFilter ? ALL_CASES.filter((c) => caseFilter.includes(c.id)) : ALL_CASES;
  if (CASES.length === 0)
    throw new Error(`CASES matched nothing; ids: ${ALL_CASES.map((c) => c.id).join(", ")}`);

  const which = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).stdout.trim();
  for (const cmd of [process.env.PGBENCH ?? "pgbench", "pgbouncer"]) {
    if (!which(cmd)) {
      throw new Error(
        `${cmd} is not on PATH; on Debian 12: apt-get install -y pgbouncer postgresql-client (pgbench ships in postgresql-15)`,
      );
    }
  }
  // Debian's /usr/bin/pgbench is a Perl wrapper that execs the newest installed version: call that directly.
  const PGBENCH =
    process.env.PGBENCH ??
    (readdirSafe("/usr/lib/postgresql")
      .map((v) => `/usr/lib/postgresql/${v}/bin/pgbench`)
      .filter((f) => existsSync(f))
      .sort((a, b) => Number(b.split("/")[4]) - Number(a.split("/")[4]))[0] ||
      "pgbench");
  const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  const pgbenchVersion = firstLine(execFileSync(PGBENCH, ["--version"], { encoding: "utf8" }));
  const pgbouncerVersion = firstLine(execFileSync("pgbouncer", ["--version"], { encoding: "utf8" }));

  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("exit", () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });

  /**
   * Spawns a long-running child in its own process group (a terminal's Ctrl-C reaches the harness, which
   * stops it in order). When the soft descriptor limit is below `fdLimit`, goes through
   * `bash -c 'ulimit -n N && exec …'` so the pid is still the program's own.
   */
  function spawnService(name, file, args, { fdLimit, stdio } = {}) {
    let cmd = file;
    let argv = args;
    if (fdLimit && softFdLimit() < fdLimit) {
      cmd = "bash";
      argv = ["-c", `ulimit -n ${fdLimit} && exec "$0" "$@"`, file, ...args];
    }
    const child = spawn(cmd, argv, {
      detached: true,
      stdio: stdio ?? ["ignore", "pipe", "pipe"],
      env: process.env,
    });
    children.add(child);
    const log = [];
    const collect = (d) => {
      for (const line of d.toString().split("\n")) if (line) log.push(line);
      if (log.length > 200) log.splice(0, log.length - 200);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    const stop = async (signal = "SIGTERM") => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      if (!(await within(exited, 10_000))) {
        child.kill("SIGKILL");
        await exited;
      }
      children.delete(child);
    };
    return { name, child, log, exited, stop };
  }

  // -------------------------------------------------------------------------------------------------------------
  // 1. Origin PostgreSQL and the pgbench tables
  // -------------------------------------------------------------------------------------------------------------
  const tmp = mkdtempSync(path.join(os.tmpdir(), "pgbind-bench-gateway-"));
  chmodSync(tmp, 0o755); // as root, the server and pgbouncer run as `postgres` and must reach their files
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));

  const runtime = await resolveRuntime();
  const account = runtime.account; // { uid, gid } of `postgres` when running as root
  const superPassword = randomPassword();
  const benchPassword = randomPassword();
  log(`origin: starting PostgreSQL ${runtime.version} (embedded binaries)…`);
  const origin = await LocalPostgres.start({
    dataDir: path.join(tmp, "origin"),
    password: superPassword,
    durable: false,
    settings: { max_connections: 300, shared_buffers: "128MB" },
  });
  cleanups.push(() => origin.stop());
  log(`origin: 127.0.0.1:${origin.port}`);

  const admin = new pg.Client({
    host: origin.host,
    port: origin.port,
    user: origin.user,
    password: superPassword,
    database: "postgres",
  });
  await admin.connect();
  await admin.query(`create role ${BENCH_USER} login password '${benchPassword}'`);
  await admin.query(`create database ${BENCH_DB} owner ${BENCH_USER}`);
  const { rows } = await admin.query("select rolpassword from pg_authid where rolname = $1", [BENCH_USER]);
  const benchVerifier = rows[0].rolpassword;
  const originVersion = (await admin.query("show server_version")).rows[0].server_version;
  await admin.end();
  if (!benchVerifier.startsWith("SCRAM-SHA-256$")) throw new Error("expected a SCRAM verifier in pg_authid");

  const benchEnv = { ...process.env, PGPASSWORD: benchPassword, PGSSLMODE: "disable" };
  delete benchEnv.PGSERVICE;
  log(`origin: pgbench -i -s ${SCALE} (with the initial vacuum)…`);
  const init = spawnSync(
    PGBENCH,
    [
      "-i",
      "-q",
      "-s",
      String(SCALE),
      "-h",
      origin.host,
      "-p",
      String(origin.port),
      "-U",
      BENCH_USER,
      BENCH_DB,
    ],
    { env: benchEnv, encoding: "utf8" },
  );
  if (init.status !== 0) throw new Error(`pgbench -i failed (${init.status}):\n${init.stderr}`);

  const direct = {
    name: "direct",
    host: origin.host,
    port: origin.port,
    user: BENCH_USER,
    password: benchPassword,
    database: BENCH_DB,
  };
  const targets = [direct];

  // -------------------------------------------------------------------------------------------------------------
  // 2. PgBouncer (Debian), transaction pooling, SCRAM with the origin's verifier
  // -------------------------------------------------------------------------------------------------------------
  const bouncerDir = path.join(tmp, "pgbouncer");
  mkdirSync(bouncerDir, { mode: 0o700 });
  const bouncerPort = await freePort();
  const userlist = path.join(bouncerDir, "userlist.txt");
  const ini = path.join(bouncerDir, "pgbouncer.ini");
  const iniSettings = {
    listen_addr: "127.0.0.1",
    listen_port: bouncerPort,
    unix_socket_dir: "",
    auth_type: "scram-sha-256",
    auth_file: userlist,
    pool_mode: "transaction",
    default_pool_size: POOL,
    min_pool_size: 0,
    reserve_pool_size: 0,
    max_client_conn: MAX_CLIENT_CONN,
    max_db_connections: 0,
    server_tls_sslmode: "disable",
    ignore_startup_parameters: "extra_float_digits",
    listen_backlog: 4096,
    log_connections: 0,
    log_disconnections: 0,
    logfile: "",
    pidfile: "",
  };
  const iniText = [
    "[databases]",
    `${BENCH_DB} = host=${origin.host} port=${origin.port} dbname=${BENCH_DB}`,
    "",
    "[pgbouncer]",
    ...Object.entries(iniSettings).map(([k, v]) => `${k} = ${v}`),
    "",
  ].join("\n");
  await writeFile(ini, iniText, { mode: 0o600 });
  await writeFile(userlist, `"${BENCH_USER}" "${benchVerifier}"\n`, { mode: 0o600 });
  if (account) {
    for (const f of [bouncerDir, ini, userlist]) chownSync(f, account.uid, account.gid);
  }
  log(`pgbouncer: ${pgbouncerVersion} on 127.0.0.1:${bouncerPort}, pool_mode=transaction, pool ${POOL}`);
  // As root, bash raises the limit and pgbouncer drops to `postgres` itself (-u): it refuses to run as root.
  const bouncer = spawnService("pgbouncer", "pgbouncer", [...(account ? ["-u", "postgres"] : []), ini], {
    fdLimit: FD_NEED,
  });
  cleanups.push(() => bouncer.stop("SIGTERM")); // SIGTERM: immediate shutdown (SIGINT would wait for clients)
  const pgbouncer = { ...direct, name: "pgbouncer", port: bouncerPort, service: bouncer };
  await waitUntilServing(pgbouncer, bouncer);
  targets.push(pgbouncer);

  // -------------------------------------------------------------------------------------------------------------
  // 3. The pgbind gateway, when `pgbind gateway` exists
  // -------------------------------------------------------------------------------------------------------------
  const pgbindBin = process.env.PGBIND_BIN ?? path.join(root, "node_modules/.bin/pgbind");
  const gatewayAvailable =
    process.env.GATEWAY !== "0" &&
    spawnSync(pgbindBin, ["gateway", "--help"], { stdio: "ignore", timeout: 30_000 }).status === 0;
  let gatewayInfo = { available: false };
  let profileDir;
  if (!gatewayAvailable) {
    log(process.env.GATEWAY === "0" ? "gateway: skipped (GATEWAY=0)" : "gateway: not built yet");
  } else {
    const gatewayPort = await freePort();
    const originUrl = `postgres://${BENCH_USER}:${encodeURIComponent(benchPassword)}@${origin.host}:${origin.port}/${BENCH_DB}?sslmode=disable`;
    const gatewayArgs = [
      "gateway",
      "--origin",
      originUrl,
      "--user",
      BENCH_USER,
      "--password",
      benchPassword,
      "--pool-size",
      String(POOL),
      "--listen",
      `127.0.0.1:${gatewayPort}`,
    ];
    const nodeFlags = [];
    if (PROFILE) {
      profileDir = process.env.PROFILE_DIR ?? path.join(os.tmpdir(), `pgbind-gateway-prof-${stamp()}`);
      mkdirSync(profileDir, { recursive: true });
      nodeFlags.push("--cpu-prof", "--cpu-prof-dir", profileDir);
    }
    const pgbindJs = realpathSync(pgbindBin);
    const gw = spawnService("gateway", process.execPath, [...nodeFlags, pgbindJs, ...gatewayArgs], {
      fdLimit: FD_NEED,
    });
    cleanups.push(() => gw.stop("SIGTERM"));
    const gateway = { ...direct, name: "gateway", port: gatewayPort, service: gw };
    await waitUntilServing(gateway, gw);
    targets.push(gateway);
    gatewayInfo = {
      available: true,
      command: ["node", ...nodeFlags, "pgbind", ...gatewayArgs].map((a) =>
        a.replaceAll(benchPassword, "***").replaceAll(encodeURIComponent(benchPassword), "***"),
      ),
      profileDir,
    };
    log(`gateway: 127.0.0.1:${gatewayPort}${PROFILE ? `, CPU profile to ${profileDir}` : ""}`);
  }

  // -------------------------------------------------------------------------------------------------------------
  // 4. pgbench, interleaved: for each repetition, for each case, every target in turn
  // -------------------------------------------------------------------------------------------------------------
  function runPgbench(target, c, seconds = DURATION) {
    const args = [
      "-h",
      target.host,
      "-p",
      String(target.port),
      "-U",
      target.user,
      "--no-vacuum",
      "-T",
      String(seconds),
      "-c",
      String(c.clients),
      "-j",
      String(Math.min(2, c.clients)),
      ...c.args,
      target.database,
    ];
    // Through bash so that `times` reports pgbench's CPU time; its own process group, killed as a whole.
    const script = '"$0" "$@"; rc=$?; times >&2; exit $rc';
    // CPU is sampled before the start and SETTLE_MS after pgbench exits, so that its backends have exited
    // and been reaped by the postmaster (their time moves to its cutime): reading mid-reap loses them.
    const poolerPids = target.service ? serviceProcesses(target.port) : [];
    const cpuBefore = { pooler: cpuTicks(poolerPids), origin: originTicks(), machine: machineTicks() };
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const child = spawn("bash", ["-c", script, PGBENCH, ...args], {
        env: { ...benchEnv, PGPASSWORD: target.password },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      benches.add(child);
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      const guard = setTimeout(() => killGroup(child, "SIGKILL"), (seconds + 120) * 1000);
      child.once("error", reject);
      child.once("close", async (code, signal) => {
        clearTimeout(guard);
        benches.delete(child);
        await sleep(SETTLE_MS);
        const wall = (performance.now() - t0) / 1000;
        // `times` prints the shell's own user/sys, then its children's (pgbench).
        const times = [...stderr.matchAll(/^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/gm)];
        const t = times.at(-1);
        const pgbenchCpu = t
          ? Number(t[1]) * 60 + Number(t[2]) + Number(t[3]) * 60 + Number(t[4])
          : undefined;
        const poolerCpu = target.service ? (cpuTicks(poolerPids) - cpuBefore.pooler) / CLK_TCK : undefined;
        const originCpu = (originTicks() - cpuBefore.origin) / CLK_TCK;
        const machine = machineTicks();
        const machineCpu = (machine.task - cpuBefore.machine.task) / CLK_TCK;
        const irqCpu = (machine.irq - cpuBefore.machine.irq) / CLK_TCK;
        const parsed = parsePgbench(stdout, stderr);
        resolve({
          ...parsed,
          exitCode: code,
          signal,
          wallSeconds: round(wall, 2),
          // CPU used from start to SETTLE_MS after the end, in cores (CPU seconds ÷ those wall seconds).
          cpuCores: {
            pgbench: pgbenchCpu === undefined ? undefined : round(pgbenchCpu / wall, 3),
            pooler: poolerCpu === undefined ? undefined : round(poolerCpu / wall, 3),
            origin: round(originCpu / wall, 3),
            irq: round(irqCpu / wall, 3),
            // everything else on the machine (other workloads, kernel threads, the harness): should be near 0
            other: round(
              Math.max(0, machineCpu - (pgbenchCpu ?? 0) - (poolerCpu ?? 0) - originCpu) / wall,
              3,
            ),
          },
          poolerCpuUsPerTx:
            poolerCpu !== undefined && parsed.transactions
              ? round((poolerCpu * 1e6) / parsed.transactions, 1)
              : undefined,
        });
      });
    });
  }

  /**
   * Before each run: waits (up to QUIET_WAIT s) until the machine is quiet, i.e. under DISTURBED_CORES busy
   * over half a second while none of the runs is going (the poolers and the origin are idle then).
   */
  async function waitForQuiet() {
    const deadline = Date.now() + QUIET_WAIT_S * 1000;
    let announced = false;
    for (;;) {
      const a = machineTicks().task;
      await sleep(500);
      const busy = (machineTicks().task - a) / CLK_TCK / 0.5;
      if (busy <= DISTURBED_CORES || stopping) return;
      if (Date.now() > deadline) {
        log(`  still ${busy.toFixed(2)} cores busy after ${QUIET_WAIT_S} s; running anyway`);
        return;
      }
      if (!announced) log(`  machine busy (${busy.toFixed(2)} cores used by other processes): waiting…`);
      announced = true;
    }
  }

  /** CPU ticks of the origin: the postmaster, the children it reaped, and its live children. */
  function originTicks() {
    const root = origin.pid;
    let total = 0;
    try {
      const f = procStat(root);
      total += f.utime + f.stime + f.cutime + f.cstime;
    } catch {
      return 0;
    }
    for (const pid of readdirSync("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const f = procStat(pid);
        if (f.ppid === root) total += f.utime + f.stime;
      } catch {
        // exited meanwhile
      }
    }
    return total;
  }

  const samples = [];
  const started = performance.now();
  const totalRuns = REPS * CASES.length * targets.length;
  log(
    `pgbench: ${CASES.length} cases × ${targets.length} targets × ${REPS} reps × ${DURATION} s ≈ ${Math.ceil((totalRuns * (DURATION + 1)) / 60)} min`,
  );
  const discarded = [];
  if (WARMUP > 0) log(`warm-up: ${WARMUP} s per case and target, not measured`);
  for (const c of WARMUP > 0 ? CASES : []) {
    for (const target of targets) {
      if (stopping || (target.service && !serviceAlive(target))) continue;
      const r = await runPgbench(target, c, WARMUP);
      log(`  warm-up ${c.id.padEnd(16)} ${target.name.padEnd(9)} tps ${fmtNum(r.tps).padStart(7)}`);
    }
  }
  for (let rep = 1; rep <= REPS && !stopping; rep++) {
    for (const c of CASES) {
      for (const target of targets) {
        if (stopping) break;
        if (target.service && !serviceAlive(target)) continue;
        let r;
        for (let attempt = 0; ; attempt++) {
          await waitForQuiet();
          r = await runPgbench(target, c);
          if (stopping || r.cpuCores.other <= DISTURBED_CORES || attempt >= RETRIES) break;
          discarded.push({ rep, case: c.id, target: target.name, ...r });
          log(
            `  rep ${rep} ${c.id} ${target.name}: other processes used ${r.cpuCores.other} cores during the run; repeating it`,
          );
        }
        if (stopping) break;
        samples.push({ rep, case: c.id, target: target.name, ...r });
        const errs = r.failedTransactions + r.abortedClients + r.errorLines;
        log(
          `  rep ${rep} ${c.id.padEnd(16)} ${target.name.padEnd(9)} tps ${fmtNum(r.tps).padStart(7)}  lat ${String(r.latencyMs ?? "-").padStart(7)} ms  cpu ${fmtCores(r.cpuCores.pgbench)}/${fmtCores(r.cpuCores.pooler)}/${fmtCores(r.cpuCores.origin)} other ${fmtCores(r.cpuCores.other)}${errs || r.exitCode ? `  failed ${r.failedTransactions}, aborted ${r.abortedClients}, errors ${r.errorLines}, exit ${r.exitCode}${r.firstError ? `: ${r.firstError}` : ""}` : ""}`,
        );
      }
    }
  }
  if (stopping) return;
  log(`pgbench: done in ${((performance.now() - started) / 60_000).toFixed(1)} min`);

  // -------------------------------------------------------------------------------------------------------------
  // 5. Memory per idle client, for each pooler
  // -------------------------------------------------------------------------------------------------------------
  const memory = [];
  for (const target of targets.filter((t) => t.service && IDLE_LEVELS.length > 0 && serviceAlive(t))) {
    if (stopping) break;
    memory.push(await measureIdleMemory(target));
  }
  if (stopping) return;

  // -------------------------------------------------------------------------------------------------------------
  // 6. Report
  // -------------------------------------------------------------------------------------------------------------
  const summary = [];
  for (const c of CASES) {
    for (const target of targets) {
      const runs = samples.filter((s) => s.case === c.id && s.target === target.name);
      if (runs.length === 0) continue;
      const tps = runs.map((r) => r.tps ?? 0);
      const lat = runs.map((r) => r.latencyMs).filter((x) => x !== undefined);
      summary.push({
        case: c.id,
        label: c.label,
        clients: c.clients,
        target: target.name,
        runs: runs.length,
        tpsMedian: median(tps),
        tpsMin: Math.min(...tps),
        tpsMax: Math.max(...tps),
        latencyMsMedian: lat.length ? median(lat) : undefined,
        cpuCoresMedian: {
          pgbench: medianOf(runs.map((r) => r.cpuCores.pgbench)),
          pooler: medianOf(runs.map((r) => r.cpuCores.pooler)),
          origin: medianOf(runs.map((r) => r.cpuCores.origin)),
          other: medianOf(runs.map((r) => r.cpuCores.other)),
        },
        runsDisturbed: runs.filter((r) => r.cpuCores.other > DISTURBED_CORES).length,
        poolerCpuUsPerTxMedian: medianOf(runs.map((r) => r.poolerCpuUsPerTx)),
        failedTransactions: sum(runs.map((r) => r.failedTransactions)),
        abortedClients: sum(runs.map((r) => r.abortedClients)),
        errorLines: sum(runs.map((r) => r.errorLines)),
        runsWithNonZeroExit: runs.filter((r) => r.exitCode !== 0).length,
        firstError: runs.find((r) => r.firstError)?.firstError,
      });
    }
  }
  const find = (caseId, target) => summary.find((s) => s.case === caseId && s.target === target);
  for (const s of summary) {
    const d = find(s.case, "direct");
    const b = find(s.case, "pgbouncer");
    s.vsDirect = d?.tpsMedian ? s.tpsMedian / d.tpsMedian : undefined;
    s.vsPgbouncer = b?.tpsMedian ? s.tpsMedian / b.tpsMedian : undefined;
  }

  const gw = (caseId) => find(caseId, "gateway");
  const ratioCheck = (caseId, min, what) => {
    const s = gw(caseId);
    const ok = s ? s.vsPgbouncer >= min && errorCount(s) === 0 : undefined;
    return {
      check: what,
      target: `≥ ${min.toFixed(1)}× PgBouncer`,
      value: s ? `${s.vsPgbouncer.toFixed(2)}×` : "pending",
      result: s ? (ok ? "PASS" : "FAIL") : "pending",
    };
  };
  const idleAt = (n) => memory.find((m) => m.target === "gateway")?.levels.find((l) => l.clients === n);
  const maxIdle = IDLE_LEVELS.at(-1);
  const checks = [];
  if (CASES.some((c) => c.id === "S-simple-c50"))
    checks.push(ratioCheck("S-simple-c50", TARGET_MIN_RATIO, "-S -M simple, 50 clients (aim ≥ 1.0×)"));
  if (CASES.some((c) => c.id === "S-extended-c50"))
    checks.push(ratioCheck("S-extended-c50", TARGET_MIN_RATIO, "-S -M extended, 50 clients (aim ≥ 1.0×)"));
  if (CASES.some((c) => c.id === "S-prepared-c50")) {
    const s = gw("S-prepared-c50");
    const errors = s ? errorCount(s) : undefined;
    checks.push({
      check: "-S -M prepared, 50 clients: errors",
      target: "0",
      value: s ? String(errors) : "pending",
      result: s ? (errors === 0 ? "PASS" : "FAIL") : "pending",
    });
  }
  if (CASES.some((c) => c.id === "S-connect-c10"))
    checks.push(ratioCheck("S-connect-c10", TARGET_CONNECT_RATIO, "-S -C, 10 clients"));
  if (maxIdle) {
    const l = idleAt(maxIdle);
    checks.push({
      check: `memory per idle client at ${maxIdle.toLocaleString("en")} clients`,
      target: `≤ ${TARGET_KIB_PER_IDLE} KiB`,
      value: l ? `${l.kibPerClient.toFixed(1)} KiB` : "pending",
      result: l ? (l.kibPerClient <= TARGET_KIB_PER_IDLE && l.failed === 0 ? "PASS" : "FAIL") : "pending",
    });
  }

  const env = {
    date: new Date().toISOString().slice(0, 10),
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model.trim(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
  const lines = [];
  const out = (s = "") => lines.push(s);
  out(
    `## Gateway benchmark (${env.date}, ${env.nproc} cores, Node ${env.node}, PostgreSQL ${originVersion}, ${pgbouncerVersion}, ${pgbenchVersion})`,
  );
  out();
  out(
    `Pool size ${POOL} server connections per pooler, pgbench scale ${SCALE}, ${DURATION} s per run, ${REPS} interleaved repetitions, medians. Gateway: ${gatewayInfo.available ? "measured" : "not built yet (rows pending)"}.`,
  );
  out();
  out(
    "| Case | clients | target | TPS (median) | TPS min–max | latency avg ms | × direct | × PgBouncer | CPU cores: pgbench / pooler / origin | pooler µs/tx | errors |",
  );
  out("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
  const disturbed = samples.filter((r) => r.cpuCores.other > DISTURBED_CORES);
  const targetNames = ["direct", "pgbouncer", "gateway"];
  for (const c of CASES) {
    for (const name of targetNames) {
      const s = find(c.id, name);
      if (!s) {
        if (name === "gateway") out(`| ${c.label} | ${c.clients} | gateway | pending | | | | | | | |`);
        continue;
      }
      out(
        `| ${c.label} | ${c.clients} | ${name} | ${fmtNum(s.tpsMedian)}${s.abortedClients ? " †" : ""} | ${fmtNum(s.tpsMin)}–${fmtNum(s.tpsMax)} | ${s.latencyMsMedian?.toFixed(3) ?? "–"} | ${fmtRatio(s.vsDirect)} | ${fmtRatio(s.vsPgbouncer)} | ${fmtCores(s.cpuCoresMedian.pgbench)} / ${fmtCores(s.cpuCoresMedian.pooler)} / ${fmtCores(s.cpuCoresMedian.origin)} | ${s.poolerCpuUsPerTxMedian?.toFixed(1) ?? "–"} | ${errorCell(s)} |`,
      );
    }
  }
  out();
  if (summary.some((s) => s.abortedClients > 0)) {
    out("† clients aborted on errors: the TPS is what the surviving clients did, not a comparable figure.");
    out();
  }
  out(
    disturbed.length === 0
      ? `Quiet machine: no run saw more than ${DISTURBED_CORES} cores used by other processes.`
      : `**Warning**: ${disturbed.length} of ${samples.length} runs saw more than ${DISTURBED_CORES} cores used by other processes (max ${Math.max(...disturbed.map((r) => r.cpuCores.other)).toFixed(2)}); the machine was not quiet (see \`samples[].cpuCores.other\` in results.json).`,
  );
  if (memory.length > 0 || IDLE_LEVELS.length > 0) {
    out();
    out(
      "Memory: RSS of the pooler process (VmRSS), idle authenticated clients opened in steps; KiB per client = (RSS − RSS before) ÷ clients.",
    );
    out();
    out(
      `| target | RSS before | ${IDLE_LEVELS.map((n) => `RSS at ${n.toLocaleString("en")} | KiB/client at ${n.toLocaleString("en")}`).join(" | ")} | failed connects |`,
    );
    out(`|---|---:|${IDLE_LEVELS.map(() => "---:|---:").join("|")}|---:|`);
    for (const name of ["pgbouncer", "gateway"]) {
      const m = memory.find((x) => x.target === name);
      if (!m) {
        if (name === "gateway") out(`| gateway | pending |${IDLE_LEVELS.map(() => " | ").join("|")}| |`);
        continue;
      }
      const cells = IDLE_LEVELS.map((n) => {
        const l = m.levels.find((x) => x.clients === n);
        return l ? `${fmtKiB(l.rssKiB)} | ${l.kibPerClient.toFixed(1)}` : " | ";
      });
      out(
        `| ${name} | ${fmtKiB(m.rssBeforeKiB)} | ${cells.join(" | ")} | ${sum(m.levels.map((l) => l.failed))} |`,
      );
    }
  }
  out();
  if (checks.length > 0) {
    out("Targets (gateway, from the issue):");
    out();
    out("| check | target | gateway | result |");
    out("|---|---:|---:|:---:|");
    for (const c of checks) out(`| ${c.check} | ${c.target} | ${c.value} | ${c.result} |`);
  }
  console.log(`\n${lines.join("\n")}\n`);

  const results = {
    date: env.date,
    machine: { ...env, date: undefined },
    versions: { origin: originVersion, pgbouncer: pgbouncerVersion, pgbench: pgbenchVersion },
    config: {
      pool: POOL,
      reps: REPS,
      durationSeconds: DURATION,
      warmupSeconds: WARMUP,
      scale: SCALE,
      cases: CASES,
      idleLevels: IDLE_LEVELS,
      origin: { max_connections: 300, shared_buffers: "128MB", durable: false },
      pgbouncer: {
        ...iniSettings,
        listen_port: undefined,
        auth_file: "userlist.txt (SCRAM verifier from pg_authid)",
      },
    },
    gateway: gatewayInfo,
    services: Object.fromEntries(
      targets
        .filter((t) => t.service)
        .map((t) => [t.name, { died: t.died, logTail: t.service.log.slice(-20) }]),
    ),
    summary,
    memory,
    checks,
    samples,
    discarded,
  };
  const resultsFile = path.join(here, resultsName);
  await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  // Keep `npm run check` green: format the file the way biome wants it (short arrays on one line).
  spawnSync(path.join(root, "node_modules/.bin/biome"), ["format", "--write", resultsFile], {
    stdio: "ignore",
  });
  log(`wrote ${path.relative(root, resultsFile)}`);

  await cleanup();
  if (profileDir)
    log(
      `gateway CPU profile: ${
        readdirSync(profileDir)
          .map((f) => path.join(profileDir, f))
          .join(", ") || `none written to ${profileDir} (the gateway must exit normally on SIGTERM)`
      }`,
    );
  process.exit(0);

  // -------------------------------------------------------------------------------------------------------------
  // helpers that need the harness's state
  // -------------------------------------------------------------------------------------------------------------

  /** False once the service has exited; logs that once, with the end of its output. */
  function serviceAlive(target) {
    const { child, log: output, name } = target.service;
    if (child.exitCode === null && child.signalCode === null) return true;
    if (!target.died) {
      target.died = { code: child.exitCode, signal: child.signalCode, logTail: output.slice(-20) };
      log(
        `${name} EXITED (${child.signalCode ?? `code ${child.exitCode}`}); its remaining runs are skipped:`,
      );
      for (const line of output.slice(-20)) log(`  | ${line}`);
    }
    return false;
  }

  /** Waits until the service logs in a client (or exits, or 30 s pass). */
  async function waitUntilServing(target, service) {
    const deadline = Date.now() + 30_000;
    let lastError;
    while (Date.now() < deadline) {
      if (service.child.exitCode !== null || service.child.signalCode !== null) break;
      try {
        const { socket } = await openClient(target, undefined, 5_000);
        socket.end(TERMINATE);
        return;
      } catch (error) {
        lastError = error;
        await sleep(200);
      }
    }
    throw new Error(
      `${service.name} is not serving on ${target.host}:${target.port}: ${lastError?.message ?? "exited"}\n${service.log.slice(-20).join("\n")}`,
    );
  }

  async function measureIdleMemory(target) {
    log(`memory: ${target.name}: idle clients ${IDLE_LEVELS.join(", ")}…`);
    const connector = spawnService("idle-connector", process.execPath, [thisFile, "--idle-connector"], {
      fdLimit: Math.max(...IDLE_LEVELS) + 1000,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    cleanups.push(() => connector.stop("SIGKILL"));
    const replies = [];
    const waiters = [];
    connector.child.on("message", (m) => {
      const w = waiters.shift();
      if (w) w(m);
      else replies.push(m);
    });
    const next = () =>
      replies.length > 0
        ? Promise.resolve(replies.shift())
        : new Promise((resolve, reject) => {
            waiters.push(resolve);
            connector.exited.then(() => reject(new Error("the idle connector exited")));
          });
    await next(); // ready
    const pids = serviceProcesses(target.port);
    if (pids.length === 0) throw new Error(`no process listens on port ${target.port}`);
    await sleep(1000);
    const rssBeforeKiB = await settledRss(pids);
    const levels = [];
    let open = 0;
    const endpoint = {
      host: target.host,
      port: target.port,
      user: target.user,
      password: target.password,
      database: target.database,
    };
    for (const n of IDLE_LEVELS) {
      connector.child.send({ op: "open", count: n - open, target: endpoint, concurrency: 64 });
      const r = await next();
      open = r.open;
      await sleep(1000); // let the pooler settle
      const rss = await settledRss(pids);
      const level = {
        clients: n,
        open: r.open,
        failed: r.failed,
        errors: r.errors,
        droppedWhileIdle: r.droppedWhileIdle,
        openMs: Math.round(r.ms),
        rssKiB: rss,
        kibPerClient: (rss - rssBeforeKiB) / n,
      };
      levels.push(level);
      log(
        `  ${target.name}: ${r.open} idle clients (${r.failed} failed${r.errors.length ? `: ${r.errors[0]}` : ""}), opened in ${(r.ms / 1000).toFixed(1)} s, RSS ${fmtKiB(rssBeforeKiB)} → ${fmtKiB(rss)} = ${level.kibPerClient.toFixed(1)} KiB/client`,
      );
    }
    connector.child.send({ op: "close" });
    await next();
    const rssAfterCloseKiB = await settledRss(pids);
    connector.child.send({ op: "exit" });
    await connector.exited;
    children.delete(connector.child);
    return { target: target.name, pids, rssBeforeKiB, levels, rssAfterCloseKiB };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------------------------

/** Parses pgbench's summary (PostgreSQL 15+ output) and its per-client errors. */
function parsePgbench(stdout, stderr) {
  const num = (re) => {
    const m = stdout.match(re);
    return m ? Number(m[1]) : undefined;
  };
  // "client 3 script 0 aborted in command 1 query 0: ERROR:  …" (15+), "client 3 aborted …" (older)
  const aborted = new Set([...stderr.matchAll(/client (\d+) (?:script \d+ )?aborted/g)].map((m) => m[1]));
  const errorLines = stderr.split("\n").filter((l) => /ERROR|FATAL|error:|fatal:/.test(l));
  // Distinct messages, client numbers removed, most frequent first.
  const counts = new Map();
  for (const line of errorLines) {
    const key = line
      .replace(/^pgbench: error: /, "")
      .replace(/client \d+/g, "client N")
      .trim()
      .slice(0, 200);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const errors = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([message, count]) => ({ message, count }));
  return {
    tps: num(/^tps = ([\d.]+) \((?:without initial connection time|including reconnection times)\)/m),
    latencyMs: num(/^latency average = ([\d.]+) ms/m),
    initialConnectionMs: num(/^initial connection time = ([\d.]+) ms/m),
    averageConnectionMs: num(/^average connection time = ([\d.]+) ms/m),
    transactions: num(/^number of transactions actually processed: (\d+)/m),
    failedTransactions: num(/^number of failed transactions: (\d+)/m) ?? 0,
    abortedClients: aborted.size,
    errorLines: errorLines.filter((l) => !/Run was aborted/.test(l)).length,
    errors: errors.slice(0, 5),
    firstError: errors[0]?.message,
  };
}

/** The processes of a service: those listening on `port`, and their descendants (workers a pooler may fork). */
function serviceProcesses(port) {
  const pids = new Set(listeningPids(port));
  const parents = new Map();
  for (const pid of readdirSafe("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      parents.set(Number(pid), procStat(pid).ppid);
    } catch {
      // exited meanwhile
    }
  }
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!pids.has(pid) && pids.has(ppid)) {
        pids.add(pid);
        grew = true;
      }
    }
  }
  return [...pids];
}

/** The pids holding a TCP socket listening on 127.0.0.1/0.0.0.0:port (all of them: a pooler may fork). */
function listeningPids(port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[1].endsWith(`:${hexPort}`) && f[3] === "0A") inodes.add(f[9]);
    }
  }
  const pids = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        let link;
        try {
          link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          continue;
        }
        const m = link.match(/^socket:\[(\d+)\]$/);
        if (m && inodes.has(m[1])) {
          pids.push(Number(pid));
          break;
        }
      }
    } catch {
      // the process exited or is not ours to read
    }
  }
  return pids;
}

/** Fields of /proc/<pid>/stat, CPU times in clock ticks. */
function procStat(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
  return {
    ppid: Number(f[1]),
    utime: Number(f[11]),
    stime: Number(f[12]),
    cutime: Number(f[13]),
    cstime: Number(f[14]),
  };
}

/**
 * CPU ticks of the whole machine, all cores, from /proc/stat: `task` (user + nice + system: what processes
 * and kernel threads used) and `irq` (irq + softirq: mostly loopback TCP here, not charged to any process).
 */
function machineTicks() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return { task: f[0] + f[1] + f[2], irq: f[5] + f[6] };
}

function cpuTicks(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      const f = procStat(pid);
      total += f.utime + f.stime;
    } catch {
      // exited
    }
  }
  return total;
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Median of 5 RSS readings 400 ms apart: a garbage-collected pooler's RSS moves by a few MB. */
async function settledRss(pids) {
  const readings = [];
  for (let i = 0; i < 5; i++) {
    if (i > 0) await sleep(400);
    readings.push(rssKiB(pids));
  }
  return median(readings);
}

function rssKiB(pids) {
  let total = 0;
  for (const pid of pids) {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
    if (m) total += Number(m[1]);
  }
  return total;
}

function readdirSafe(dir) {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function softFdLimit() {
  const m = readFileSync("/proc/self/limits", "utf8").match(/^Max open files\s+(\d+|unlimited)/m);
  return !m || m[1] === "unlimited" ? Number.POSITIVE_INFINITY : Number(m[1]);
}

function positiveInt(value, fallback) {
  const n = Number.parseInt(value ?? "", 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

function medianOf(xs) {
  const defined = xs.filter((x) => x !== undefined);
  return defined.length ? median(defined) : undefined;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits;
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const firstLine = (s) => s.split("\n")[0].trim();
const stamp = () => new Date().toISOString().replace(/[:.]/g, "-");
const fmtNum = (x) => (x === undefined ? "–" : Math.round(x).toLocaleString("en"));
const fmtRatio = (x) => (x === undefined ? "" : `${x.toFixed(2)}×`);
const fmtKiB = (k) => (k >= 10240 ? `${(k / 1024).toFixed(1)} MiB` : `${k} KiB`);
/** Everything that went wrong in a case's runs: failed transactions, aborted clients, error lines, bad exits. */
const errorCount = (s) => s.failedTransactions + s.abortedClients + s.errorLines + s.runsWithNonZeroExit;
const errorCell = (s) => {
  if (errorCount(s) === 0) return "0";
  const parts = [];
  if (s.abortedClients) parts.push(`${s.abortedClients}/${s.clients * s.runs} clients aborted`);
  if (s.failedTransactions) parts.push(`${s.failedTransactions} failed tx`);
  if (s.errorLines) parts.push(`${s.errorLines} errors`);
  if (s.runsWithNonZeroExit) parts.push(`${s.runsWithNonZeroExit}/${s.runs} runs exit≠0`);
  const first = s.firstError ? `, e.g. \`${s.firstError.replaceAll("|", "\\|").replaceAll("`", "'")}\`` : "";
  return `${parts.join(", ")}${first}`;
};
const fmtCores = (x) => (x === undefined ? "–" : x.toFixed(2));

function log(message) {
  console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

function within(promise, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Process bookkeeping: everything started is stopped at the end, on an error, and on SIGINT/SIGTERM.
// ---------------------------------------------------------------------------------------------------------------
const children = new Set(); // long-running children (poolers, connector): SIGKILLed on exit as a last resort
const benches = new Set(); // running pgbench processes
const cleanups = []; // run in reverse order
let stopping = false;
let cleaned;

function cleanup() {
  cleaned ??= (async () => {
    stopping = true;
    for (const child of benches) killGroup(child, "SIGTERM");
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (error) {
        console.error(`cleanup: ${error?.message ?? error}`);
      }
    }
  })();
  return cleaned;
}

function onSignal(signal) {
  if (stopping) return;
  console.error(`\n${signal}: stopping everything…`);
  cleanup().then(() => process.exit(signal === "SIGINT" ? 130 : 143));
}

// Dispatch last: the helpers above are `const`s and must be initialised first.
if (process.argv[2] === "--idle-connector") {
  await runConnector();
} else {
  try {
    await main();
  } catch (error) {
    console.error(stopping ? `stopped: ${error?.message ?? error}` : error);
    await cleanup();
    process.exit(1);
  }
}
