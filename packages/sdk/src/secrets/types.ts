import type { AuroraBinding, CloudSqlBinding, FlexibleServerBinding } from "../binding.js";

/** What a secret store returned for a binding: always a password, sometimes a user name (RDS JSON secrets). */
export interface ResolvedSecret {
  readonly password: string;
  readonly username?: string;
}

/** AWS Secrets Manager client settings; by default the SDK's own chain (env, profile, IMDS). */
export interface AwsSecretsOptions {
  /** Endpoint override, e.g. a VPC endpoint or a local test server. `AWS_ENDPOINT_URL_SECRETS_MANAGER` also works. */
  readonly endpoint?: string;
  readonly credentials?: {
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
    readonly sessionToken?: string;
  };
  /** Extra `SecretsManagerClient` configuration, merged last. */
  readonly clientConfig?: Readonly<Record<string, unknown>>;
}

/** GCP Secret Manager client settings; by default Application Default Credentials over gRPC. */
export interface GcpSecretsOptions {
  /** API host override (no scheme), e.g. a private endpoint or a local test server. */
  readonly apiEndpoint?: string;
  readonly port?: number;
  /** `http` only for local test servers; implies the REST transport. */
  readonly protocol?: "http" | "https";
  /** An auth client (google-auth-library) to use instead of Application Default Credentials. */
  readonly authClient?: unknown;
  /** Extra `SecretManagerServiceClient` options, merged last. */
  readonly clientOptions?: Readonly<Record<string, unknown>>;
}

/** Azure Key Vault client settings; by default `DefaultAzureCredential` from `@azure/identity`. */
export interface AzureSecretsOptions {
  /** A `TokenCredential`; when absent `@azure/identity`'s `DefaultAzureCredential` is loaded. */
  readonly credential?: unknown;
  /** Origin that replaces the vault's own (`https://host:port`), e.g. a private endpoint or a local test server. */
  readonly endpoint?: string;
  /** Extra `SecretClient` options, merged last. */
  readonly clientOptions?: Readonly<Record<string, unknown>>;
}

/** Per-store client settings for {@link ResolverOptions.secretStores}. */
export interface SecretStoreOptions {
  readonly aws?: AwsSecretsOptions;
  readonly gcp?: GcpSecretsOptions;
  readonly azure?: AzureSecretsOptions;
}

/**
 * Reads one managed binding's password. Implementations throw `PgBindError`
 * `POSTGRES_SECRET_RESOLUTION_ERROR` with `retryable` set to whether trying again could help.
 * They never put the secret value in an error.
 */
export type SecretFetcher<B> = (
  bindingName: string,
  binding: B,
  options: SecretStoreOptions,
) => Promise<ResolvedSecret>;

export type AuroraFetcher = SecretFetcher<AuroraBinding>;
export type CloudSqlFetcher = SecretFetcher<CloudSqlBinding>;
export type FlexibleServerFetcher = SecretFetcher<FlexibleServerBinding>;
