// Structured logs for long-running pgbind commands (the gateway today): JSON lines through pino.
import { type Level, type Logger, pino } from "pino";
import { CliError } from "./errors.js";

/** Levels a `--log-level` flag accepts, most verbose first. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What a redacted value is replaced with. */
export const REDACTED = "[redacted]";

const SECRET_KEYS = [
  "password",
  "passwd",
  "secret",
  "token",
  "accessToken",
  "refreshToken",
  "apiKey",
  "authorization",
  "cookie",
  "connectionString",
  "databaseUrl",
  "scramVerifier",
  "privateKey",
];

/**
 * Field paths pino replaces with {@link REDACTED}: each secret-looking key at the top level, one level down
 * (`origin.password`) and in arrays (`credentials[*].scramVerifier`). A second line of defence: callers keep
 * secrets out of log fields in the first place.
 */
export const REDACT_PATHS: readonly string[] = SECRET_KEYS.flatMap((key) => [
  key,
  `*.${key}`,
  `*[*].${key}`,
  `*.*.${key}`,
]);

export interface LoggerOptions {
  /** Receives each JSON line, newline included (e.g. the CLI's stderr). */
  readonly write: (line: string) => void;
  /** Default `info`. */
  readonly level?: LogLevel;
  /** The component, logged as `name` (e.g. `gateway`). */
  readonly name?: string;
}

/**
 * A pino logger writing one JSON object per line: `level` as a name (`"warn"`), `time` as ISO 8601, `pid`,
 * `name`, `msg` and the fields passed in. Values at {@link REDACT_PATHS} are replaced.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? "info",
      ...(options.name === undefined ? {} : { name: options.name }),
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    },
    { write: (line: string) => options.write(line) },
  );
}

/** Validates a `--log-level` value; a usage error names the valid ones. */
export function parseLogLevel(value: string | undefined, flag = "--log-level"): LogLevel {
  if (value === undefined) return "info";
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw new CliError("USAGE", `${flag}: "${value}" is not one of ${LOG_LEVELS.join(", ")}`);
}

export type { Level, Logger };
