import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createScramVerifier } from "@pgbind/protocol";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { startGateway } from "./gateway-support.ts";

/**
 * Connects, sends the length word of a startup packet and stops, as a stuck client or a slowloris would
 * (one that sends nothing at all stays in the kernel: the gateway accepts a connection once it speaks).
 * Resolves with what the gateway sent before closing, and how long that took; or with `closed: false` if
 * it still had not after `waitMs`.
 */
function stuckClient(port: number, waitMs: number): Promise<{ closed: boolean; ms: number; text: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1", () => socket.write(Buffer.from([0, 0, 0, 40])));
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closed: false, ms: Date.now() - started, text: "" });
    }, waitMs);
    socket.on("data", (d) => received.push(d));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ closed: true, ms: Date.now() - started, text: Buffer.concat(received).toString("latin1") });
    });
  });
}

describe("pgbind gateway login timeout", () => {
  let dir: { path: string; remove: () => Promise<void> };
  // No client logs in, so the origin is never dialled: nothing needs to listen there.
  const writeConfig = (file: string, loginTimeoutMs?: number) =>
    writeFile(
      path.join(dir.path, file),
      JSON.stringify({
        ...(loginTimeoutMs === undefined ? {} : { loginTimeoutMs }),
        bindings: [
          {
            id: "orders",
            database: "orders",
            credentials: [{ user: "app", scramVerifier: createScramVerifier("app-pw") }],
            origin: { host: "127.0.0.1", port: 1, database: "orders", user: "owner", password: "origin-pw" },
          },
        ],
      }),
    );

  before(async () => {
    dir = await makeTempDir("gw-login-timeout");
  });
  after(() => dir?.remove());

  it("takes loginTimeoutMs from the config file, and a SIGHUP applies a new value to new connections", async () => {
    await writeConfig("file.json", 300);
    const gw = startGateway(["--config", "file.json", "--listen", "127.0.0.1:0", "--no-watch"], {
      cwd: dir.path,
    });
    try {
      const port = await gw.listening;
      assert.equal((await gw.waitForLog((l) => l.event === "config_applied")).loginTimeoutMs, 300);
      const cut = await stuckClient(port, 5_000);
      assert.ok(cut.closed, "closed by the gateway");
      assert.match(cut.text, /57014/);
      assert.match(cut.text, /canceling authentication due to timeout/);
      assert.ok(cut.ms >= 250 && cut.ms < 3_000, `closed after about 300 ms, not ${cut.ms}`);

      await writeConfig("file.json", 60_000);
      const mark = gw.logs().length;
      gw.child.kill("SIGHUP");
      const applied = await gw.waitForLog((l) => l.event === "config_applied", { from: mark });
      assert.equal(applied.loginTimeoutMs, 60_000);
      assert.equal((await stuckClient(port, 800)).closed, false, "the longer timeout is in effect");
      assert.equal(await gw.stop(), 0);
    } finally {
      gw.child.kill("SIGKILL");
    }
  });

  it("--login-timeout-ms wins over the file's loginTimeoutMs", async () => {
    await writeConfig("flag.json", 60_000);
    const gw = startGateway(
      ["--config", "flag.json", "--listen", "127.0.0.1:0", "--login-timeout-ms", "300"],
      { cwd: dir.path },
    );
    try {
      const port = await gw.listening;
      assert.equal((await gw.waitForLog((l) => l.event === "config_applied")).loginTimeoutMs, 300);
      const cut = await stuckClient(port, 5_000);
      assert.ok(cut.closed && /57014/.test(cut.text), JSON.stringify(cut));
      assert.equal(await gw.stop(), 0);
    } finally {
      gw.child.kill("SIGKILL");
    }
  });

  it("refuses a bad --login-timeout-ms or file value with exit code 2, naming it and the valid range", async () => {
    await writeConfig("ok.json");
    for (const bad of ["0", "-5", "1.5", "60s", "604800001"]) {
      const gw = startGateway(["--config", "ok.json", `--login-timeout-ms=${bad}`], { cwd: dir.path });
      assert.equal(await gw.exited, 2, bad);
      assert.match(
        gw.output().stderr,
        new RegExp(
          `--login-timeout-ms: "${bad}" is not valid; expected a whole number of milliseconds from 1 to 604800000`,
        ),
      );
    }
    await writeConfig("bad.json", 0);
    const gw = startGateway(["--config", "bad.json"], { cwd: dir.path });
    assert.equal(await gw.exited, 2);
    assert.match(
      gw.output().stderr,
      /loginTimeoutMs: 0 is not valid; expected an integer from 1 to 604800000/,
    );
  });
});
