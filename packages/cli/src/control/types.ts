/** The objects of the control plane HTTP API v1 (docs/control-api.md), as the CLI reads them. */
import type { Config, Credential } from "@pgbind/control";

// Values the CLI validates flags with. @pgbind/gateway has the same lists, but importing a value from it
// would load the whole gateway (and prom-client) into every `pgbind configs` run.

export const ORIGIN_SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"] as const;
export type OriginSslMode = (typeof ORIGIN_SSL_MODES)[number];
export const POOL_MODES = ["transaction", "session"] as const;
export type PoolMode = (typeof POOL_MODES)[number];

// The objects the control plane itself defines: one definition, types only (nothing loaded at run time).
export type { Config, Credential, CredentialStatus } from "@pgbind/control";

export interface Warning {
  readonly code: string;
  readonly message: string;
}

/** `POST /v1/configs` and `PATCH /v1/configs/:id`. */
export interface ConfigWithWarnings {
  readonly config: Config;
  readonly warnings: readonly Warning[];
}

/** `POST …/credentials` and `…/credentials/rotate`: the only time the password is shown. */
export interface MintedCredential {
  readonly credential: Credential;
  readonly password: string;
  readonly connectionString: string | null;
}

/** Where clients reach the gateway; null until `pgbind control --gateway-url` is given. */
export interface GatewayInfo {
  readonly host: string;
  readonly port: number;
  readonly sslmode: OriginSslMode;
}

export interface Info {
  readonly version: string;
  readonly gateway: GatewayInfo | null;
}

export interface Problem {
  readonly field: string;
  readonly message: string;
}

/** The body of every error response. */
export interface ApiErrorBody {
  readonly error: { readonly code: string; readonly message: string; readonly problems?: readonly Problem[] };
}

/** Create body (and, every field optional, the update body). */
export interface ConfigInput {
  name?: string;
  connectionString?: string;
  origin?: {
    host?: string;
    port?: number;
    database?: string;
    user?: string;
    password?: string;
    sslmode?: OriginSslMode;
    /** A PEM CA bundle; null removes it (update). */
    sslrootcert?: string | null;
  };
  poolMode?: PoolMode;
  poolSize?: number;
}
