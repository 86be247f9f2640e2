export { LocalPostgresError, type LocalPostgresErrorCode } from "./errors.js";
export { resolveRuntime, type PostgresRuntime } from "./runtime.js";
export { freePort, LocalPostgres, type LocalPostgresOptions, randomPassword } from "./server.js";
