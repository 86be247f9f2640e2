export { AdminConsole } from "./admin-console.js";
export { BindingRuntime } from "./binding-runtime.js";
export * from "./config.js";
export * from "./config-source.js";
export { Gateway, type GatewayLog, type GatewayOptions } from "./gateway.js";
export { createMetricsRegistry, type MetricsServer, startMetricsServer } from "./metrics.js";
export { PoolError, ServerPool } from "./pool.js";
export type { BindingView, ClientView, GatewayView, ServerView } from "./view.js";
