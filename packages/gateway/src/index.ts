export { AdminConsole } from "./admin-console.js";
export { BindingRuntime } from "./binding-runtime.js";
export * from "./config.js";
export * from "./config-source.js";
export { Gateway, type GatewayLog, type GatewayOptions } from "./gateway.js";
export { createMetricsRegistry, type MetricsServer, startMetricsServer } from "./metrics.js";
export { nativeSocketLayer } from "./native-sockets.js";
export { PoolError, ServerPool } from "./pool.js";
export {
  createSelfSignedCertificate,
  SELF_SIGNED_DEFAULT_HOSTS,
  type SelfSignedCertificate,
  type SelfSignedOptions,
} from "./self-signed.js";
export type { BindingView, ClientView, GatewayView, ServerView } from "./view.js";
