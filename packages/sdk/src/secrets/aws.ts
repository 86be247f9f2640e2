import type { AuroraBinding } from "../binding.js";
import { formatProblem, isNetworkError, loadOptionalModule, secretStoreError } from "./load.js";
import type { AuroraFetcher, ResolvedSecret } from "./types.js";

// The slice of @aws-sdk/client-secrets-manager used here, so our types do not depend on the SDK's.
interface GetSecretValueOutput {
  readonly SecretString?: string;
  readonly SecretBinary?: Uint8Array;
}
interface SecretsManagerClient {
  send(command: unknown): Promise<GetSecretValueOutput>;
  destroy(): void;
}
interface SecretsManagerModule {
  readonly SecretsManagerClient: new (config: Record<string, unknown>) => SecretsManagerClient;
  readonly GetSecretValueCommand: new (input: { readonly SecretId: string }) => unknown;
}

/** Worth another attempt: the service was busy or failed on its side. */
const RETRYABLE_ERRORS = new Set([
  "ThrottlingException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "InternalServiceError",
  "InternalFailure",
  "ServiceUnavailable",
  "RequestTimeout",
  "RequestTimeoutException",
]);
/** Will fail the same way until someone changes the secret, its policy or the binding. */
const PERMANENT_ERRORS = new Set([
  "ResourceNotFoundException",
  "AccessDeniedException",
  "DecryptionFailure",
  "InvalidRequestException",
  "InvalidParameterException",
]);

/**
 * Reads an Aurora binding's password from AWS Secrets Manager (`GetSecretValue` on
 * `passwordSecretArn`, in the binding's region). The secret string is either the bare password or
 * the RDS JSON form (`{"username", "password", …}`), in which case the user name is returned too.
 *
 * A client is created per call with the SDK's own retries off (`maxAttempts: 1`): the resolver
 * retries with its own budget. `options.aws` supplies the endpoint, credentials and extra config.
 */
export const fetchAuroraSecret: AuroraFetcher = async (bindingName, binding, options) => {
  const sdk = await loadOptionalModule<SecretsManagerModule>("@aws-sdk/client-secrets-manager", {
    bindingName,
    service: binding.service,
    install: "the AWS Secrets Manager SDK",
  });
  const aws = options.aws ?? {};
  let client: SecretsManagerClient | undefined;
  let output: GetSecretValueOutput;
  try {
    client = new sdk.SecretsManagerClient({
      region: binding.region,
      maxAttempts: 1,
      ...(aws.endpoint !== undefined && { endpoint: aws.endpoint }),
      ...(aws.credentials !== undefined && { credentials: aws.credentials }),
      ...aws.clientConfig,
    });
    output = await client.send(new sdk.GetSecretValueCommand({ SecretId: binding.passwordSecretArn }));
  } catch (error) {
    throw toSecretError(bindingName, binding, error);
  } finally {
    client?.destroy();
  }
  return parseSecret(bindingName, binding, output);
};

function parseSecret(
  bindingName: string,
  binding: AuroraBinding,
  output: GetSecretValueOutput,
): ResolvedSecret {
  const fail = (problem: string, retryable: boolean) =>
    secretStoreError(bindingName, binding, binding.passwordSecretArn, problem, { retryable });
  const value = output.SecretString;
  if (value === undefined && output.SecretBinary !== undefined) {
    throw fail("it is a binary secret (SecretBinary); store the password as a secret string", false);
  }
  // An empty current version is what a rotation in progress can briefly look like.
  if (value === undefined || value === "") throw fail("the secret string is empty", true);
  if (!value.trimStart().startsWith("{")) return { password: value };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    // Not JSON after all: a password may well start with "{". (The parse error quotes the value.)
    return { password: value };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return { password: value };
  const { password, username } = parsed as Record<string, unknown>;
  if (typeof password !== "string" || password === "") {
    const keys = Object.keys(parsed)
      .slice(0, 20)
      .map((key) => JSON.stringify(key.slice(0, 40)));
    throw fail(
      `the secret string is a JSON object without a non-empty string "password" (its keys: ${keys.join(", ") || "none"})`,
      false,
    );
  }
  return typeof username === "string" && username !== "" ? { password, username } : { password };
}

interface AwsErrorShape {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly $fault?: unknown;
  readonly $metadata?: { readonly httpStatusCode?: unknown };
}

function toSecretError(bindingName: string, binding: AuroraBinding, error: unknown) {
  const { name, message, $fault, $metadata } = (error ?? {}) as AwsErrorShape;
  const status = typeof $metadata?.httpStatusCode === "number" ? $metadata.httpStatusCode : undefined;
  const errorName = typeof name === "string" ? name : "Error";
  const fail = (problem: string, retryable: boolean, cause?: unknown) =>
    secretStoreError(bindingName, binding, binding.passwordSecretArn, problem, { retryable, cause });
  // A successful response that failed to deserialize: the parse error may quote the secret, so it is dropped.
  if (errorName === "SyntaxError" || (status !== undefined && status < 300)) {
    return fail(`the response could not be read (${formatProblem(errorName, status, "")})`, true);
  }
  let retryable: boolean;
  if (RETRYABLE_ERRORS.has(errorName)) retryable = true;
  else if (PERMANENT_ERRORS.has(errorName)) retryable = false;
  else if (status !== undefined) retryable = status === 429 || status >= 500;
  else retryable = $fault === "server" || isNetworkError(error);
  return fail(formatProblem(errorName, status, message), retryable, error);
}
