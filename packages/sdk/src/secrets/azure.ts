import { formatProblem, isNetworkError, loadOptionalModule, secretStoreError } from "./load.js";
import type { FlexibleServerFetcher } from "./types.js";

// The slice of @azure/keyvault-secrets and @azure/identity used here, so our types do not depend on theirs.
interface SecretClient {
  getSecret(name: string, options: { readonly version?: string }): Promise<{ readonly value?: string }>;
}
interface KeyVaultSecretsModule {
  readonly SecretClient: new (
    vaultUrl: string,
    credential: unknown,
    options: Record<string, unknown>,
  ) => SecretClient;
}
interface IdentityModule {
  readonly DefaultAzureCredential: new () => unknown;
}

/** The parts of `https://<vault>.vault.azure.net/secrets/<name>[/<version>]`. */
export interface KeyVaultSecretReference {
  readonly vaultUrl: string;
  readonly name: string;
  readonly version?: string;
}

/** Splits a Key Vault secret URI; `undefined` when it is not one. */
export function parseKeyVaultSecretUri(uri: string): KeyVaultSecretReference | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return undefined;
  }
  const [collection, name, version, ...rest] = url.pathname.split("/").filter(Boolean);
  if (url.protocol !== "https:" || collection !== "secrets" || !name || rest.length > 0) return undefined;
  return version ? { vaultUrl: url.origin, name, version } : { vaultUrl: url.origin, name };
}

/**
 * Reads a flexible server binding's password from Azure Key Vault (`getSecret` on the name and
 * optional version of `passwordSecretUri`).
 *
 * A client is created per call with the SDK's own retries off (`maxRetries: 0`, which also stops it
 * from sleeping through `Retry-After`): the resolver retries with its own budget. The credential is
 * `options.azure.credential`, else `@azure/identity`'s `DefaultAzureCredential`. `options.azure.endpoint`
 * replaces the vault origin; since that host is not `*.vault.azure.net`, the check that the auth
 * challenge names the vault's resource is then off. `options.azure.clientOptions` (e.g. `tlsOptions`)
 * is merged last.
 */
export const fetchFlexibleServerSecret: FlexibleServerFetcher = async (bindingName, binding, options) => {
  const fail = (problem: string, retryable: boolean, cause?: unknown) =>
    secretStoreError(bindingName, binding, binding.passwordSecretUri, problem, { retryable, cause });
  const reference = parseKeyVaultSecretUri(binding.passwordSecretUri);
  if (reference === undefined) throw fail("it is not a Key Vault secret URI", false);
  const context = { bindingName, service: binding.service } as const;
  const sdk = await loadOptionalModule<KeyVaultSecretsModule>("@azure/keyvault-secrets", {
    ...context,
    install: "the Azure Key Vault secrets client",
  });
  const azure = options.azure ?? {};
  const identity =
    azure.credential === undefined
      ? await loadOptionalModule<IdentityModule>("@azure/identity", {
          ...context,
          install: "@azure/identity (or pass secretStores.azure.credential)",
        })
      : undefined;
  let value: string | undefined;
  try {
    const credential = identity === undefined ? azure.credential : new identity.DefaultAzureCredential();
    const client = new sdk.SecretClient(azure.endpoint ?? reference.vaultUrl, credential, {
      retryOptions: { maxRetries: 0 },
      ...(azure.endpoint !== undefined && { disableChallengeResourceVerification: true }),
      ...azure.clientOptions,
    });
    const version = reference.version === undefined ? {} : { version: reference.version };
    ({ value } = await client.getSecret(reference.name, version));
  } catch (error) {
    const { problem, retryable, cause } = describeError(error);
    throw fail(problem, retryable, cause);
  }
  if (value === undefined || value === "") throw fail("the secret value is empty", true);
  return { password: value };
};

interface RestErrorShape {
  readonly name?: unknown;
  readonly code?: unknown;
  readonly statusCode?: unknown;
  readonly message?: unknown;
}

/** `RestError` carries the HTTP status and Key Vault's error code (`SecretNotFound`, `Forbidden`, `Throttled`). */
function describeError(error: unknown): { problem: string; retryable: boolean; cause?: unknown } {
  const { name, code, statusCode, message } = (error ?? {}) as RestErrorShape;
  const status = typeof statusCode === "number" ? statusCode : undefined;
  // A successful response that failed to parse: the parse error quotes the body, so it is dropped.
  if (code === "PARSE_ERROR" || name === "SyntaxError" || (status !== undefined && status < 300)) {
    return {
      problem: `the response could not be read${status === undefined ? "" : ` (HTTP ${status})`}`,
      retryable: true,
    };
  }
  let retryable: boolean;
  if (status !== undefined) retryable = status === 408 || status === 429 || status >= 500;
  else retryable = isNetworkError(error);
  const label = typeof code === "string" ? code : typeof name === "string" ? name : "Error";
  return { problem: formatProblem(label, status, message), retryable, cause: error };
}
