import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeGatewayEvent } from "../src/commands/gateway.ts";
import { CliError } from "../src/errors.ts";
import { createLogger, LOG_LEVELS, parseLogLevel, REDACTED } from "../src/log.ts";

function capture(level?: (typeof LOG_LEVELS)[number]) {
  const lines: string[] = [];
  const logger = createLogger({
    write: (line) => lines.push(line),
    name: "gateway",
    ...(level ? { level } : {}),
  });
  return { logger, lines, parsed: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe("createLogger", () => {
  it("writes one JSON object per line with a level name, an ISO time, pid, name and msg", () => {
    const { logger, lines, parsed } = capture();
    logger.warn({ event: "auth_failed", user: "app", client: "127.0.0.1:5555", sqlstate: "28P01" }, "nope");
    assert.equal(lines.length, 1);
    assert.ok(lines[0]?.endsWith("}\n"));
    const [line] = parsed();
    assert.equal(line?.level, "warn");
    assert.match(String(line?.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(line?.pid, process.pid);
    assert.equal(line?.name, "gateway");
    assert.equal(line?.msg, "nope");
    assert.equal(line?.sqlstate, "28P01");
    assert.equal(line?.hostname, undefined);
  });

  it("logs at the chosen level and above, default info", () => {
    const info = capture();
    info.logger.debug("hidden");
    info.logger.info("shown");
    assert.deepEqual(
      info.parsed().map((l) => l.msg),
      ["shown"],
    );
    const warn = capture("warn");
    for (const level of LOG_LEVELS) warn.logger[level](level);
    assert.deepEqual(
      warn.parsed().map((l) => l.level),
      ["warn", "error"],
    );
    const trace = capture("trace");
    for (const level of LOG_LEVELS) trace.logger[level](level);
    assert.equal(trace.lines.length, 5);
  });

  it("redacts secret-named fields at the top level, one and two levels down, and in arrays", () => {
    const { logger, lines, parsed } = capture();
    logger.error({
      password: "s1",
      token: "s2",
      connectionString: "postgres://u:s3@h/db",
      origin: { host: "db.internal", password: "s4", user: "owner" },
      credentials: [{ user: "app", scramVerifier: "SCRAM-SHA-256$4096:s5" }],
      config: { origin: { password: "s6" } },
      auth: { secret: "s7", apiKey: "s8", authorization: "Bearer s9" },
    });
    assert.doesNotMatch(lines.join(""), /s[1-9]/);
    const [line] = parsed();
    assert.equal(line?.password, REDACTED);
    assert.deepEqual(line?.origin, { host: "db.internal", password: REDACTED, user: "owner" });
    assert.deepEqual(line?.credentials, [{ user: "app", scramVerifier: REDACTED }]);
    assert.deepEqual(line?.config, { origin: { password: REDACTED } });
  });
});

describe("parseLogLevel", () => {
  it("accepts the five levels, defaults to info, and names them when refusing another", () => {
    for (const level of LOG_LEVELS) assert.equal(parseLogLevel(level), level);
    assert.equal(parseLogLevel(undefined), "info");
    for (const bad of ["verbose", "INFO", "fatal", "silent", ""]) {
      assert.throws(
        () => parseLogLevel(bad),
        (error: CliError) =>
          error instanceof CliError &&
          error.exitCode === 2 &&
          error.message === `--log-level: "${bad}" is not one of trace, debug, info, warn, error`,
      );
    }
  });
});

describe("describeGatewayEvent", () => {
  it("maps the gateway's events to levels", () => {
    assert.equal(describeGatewayEvent("auth_failed").level, "warn");
    assert.equal(describeGatewayEvent("config_rejected").level, "error");
    assert.equal(describeGatewayEvent("config_applied").level, "info");
    assert.equal(describeGatewayEvent("config_reloaded").level, "info");
    assert.equal(describeGatewayEvent("cancel_failed").level, "warn");
    assert.equal(describeGatewayEvent("draining").level, "info");
    assert.equal(describeGatewayEvent("origin_connect_failed").level, "warn", "unknown *_failed events warn");
    assert.deepEqual(describeGatewayEvent("client_connected"), { level: "info", msg: "client connected" });
  });
});
