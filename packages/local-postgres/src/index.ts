export { LocalPostgresError, type LocalPostgresErrorCode } from "./errors.js";
export { type PostgresRuntime, resolveRuntime } from "./runtime.js";
export { freePort, LocalPostgres, type LocalPostgresOptions, randomPassword } from "./server.js";
