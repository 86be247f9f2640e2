/**
 * @pgbind/sdk: resolve an injected Postgres binding into a working, correctly secured connection.
 *
 * @example
 * import pg from "pg";
 * import { getPostgresConnection, pgConfig } from "@pgbind/sdk";
 *
 * const client = new pg.Client(pgConfig(await getPostgresConnection("db")));
 * await client.connect();
 */
import type { PostgresConnection } from "./connection.js";
import { BindingResolver, type GetPostgresConnectionOptions } from "./resolver.js";

export type {
  AuroraBinding,
  Binding,
  BindingService,
  CloudSqlBinding,
  ExternalBinding,
  FlexibleServerBinding,
  GatewayBinding,
  LocalBinding,
  ManagedBinding,
  SslMode,
} from "./binding.js";
export { BINDING_SERVICES, SSL_MODES, validateBinding } from "./binding.js";
export { encodeComponent, PostgresConnection, type SslConfig } from "./connection.js";
export { type PgClientConfig, type PostgresJsOptions, pgConfig, postgresOptions } from "./drivers.js";
export { isPgBindError, PgBindError, type PgBindErrorCode } from "./errors.js";
export {
  BindingResolver,
  type GetPostgresConnectionOptions,
  type ResolverOptions,
  tlsPolicy,
} from "./resolver.js";
export type { RetryOptions } from "./retry.js";
export type {
  AwsSecretsOptions,
  AzureSecretsOptions,
  GcpSecretsOptions,
  ResolvedSecret,
  SecretStoreOptions,
} from "./secrets/types.js";
export { type BindingEnv, bindingEnvName } from "./sources.js";

let defaultResolver: BindingResolver | undefined;

/**
 * Resolves the Postgres binding `name` (injected as `PGBIND_<NAME>_BINDING`, or a Kubernetes Service
 * Binding under `$SERVICE_BINDING_ROOT/<name>/`) into a {@link PostgresConnection}.
 *
 * Cloud secrets are cached for 60 s per process; pass `{ refresh: true }` after a password rotation.
 * Throws {@link PgBindError} with code BINDING_NOT_FOUND, INVALID_BINDING_CONFIG,
 * POSTGRES_SECRET_RESOLUTION_ERROR or DATABASE_UNREACHABLE.
 */
export function getPostgresConnection(
  name: string,
  options?: GetPostgresConnectionOptions,
): Promise<PostgresConnection> {
  defaultResolver ??= new BindingResolver();
  return defaultResolver.getPostgresConnection(name, options);
}
