import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import type { Gateway } from "../src/index.ts";
import { startGateway, testBinding } from "./support.ts";

const run = promisify(execFile);
// Debian ships pgbench with the server package; CI machines may not have it (bench/gateway installs it).
const PGBENCH = ["/usr/bin/pgbench", "/usr/lib/postgresql/15/bin/pgbench"].find((p) => existsSync(p));

describe("pgbench through the gateway", { skip: PGBENCH ? false : "pgbench is not installed" }, () => {
  let origin: TestPostgres;
  let gateway: Gateway;
  let port: number;

  before(async () => {
    origin = await startTestPostgres();
    await run(
      PGBENCH as string,
      ["-i", "-s", "1", "-q", "-h", origin.host, "-p", String(origin.port), "-U", origin.user, "postgres"],
      {
        env: { PATH: process.env.PATH, PGPASSWORD: origin.password },
      },
    );
    ({ gateway, port } = await startGateway([
      testBinding(origin, { password: "bench-pw", users: ["bench"], database: "bench", poolSize: 4 }),
    ]));
  });

  after(async () => {
    await gateway?.close(1_000);
    await origin?.stop();
  });

  for (const mode of ["simple", "extended", "prepared"]) {
    it(`runs the TPC-B script with -M ${mode}, 8 clients on 4 server connections, without a failed transaction`, async () => {
      const { stdout } = await run(
        PGBENCH as string,
        // One thread per client: pgbench prepares statements synchronously, so a client waiting for a server
        // connection would otherwise stall the other clients of its thread, including the one holding it.
        [
          "-n",
          "-c",
          "8",
          "-j",
          "8",
          "-T",
          "2",
          "-M",
          mode,
          "-h",
          "127.0.0.1",
          "-p",
          String(port),
          "-U",
          "bench",
          "bench",
        ],
        { env: { PATH: process.env.PATH, PGPASSWORD: "bench-pw" } },
      );
      assert.match(stdout, /number of failed transactions: 0 /);
      const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
      assert.ok(tps > 50, `tps ${tps}`);
    });
  }
});
