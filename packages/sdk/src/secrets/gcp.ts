import { Buffer } from "node:buffer";
import { formatProblem, isNetworkError, loadOptionalModule, secretStoreError } from "./load.js";
import type { CloudSqlFetcher } from "./types.js";

// The slice of @google-cloud/secret-manager used here, so our types do not depend on the SDK's.
interface SecretPayload {
  /** Bytes over gRPC and REST; a base64 string if a transport leaves it undecoded. */
  readonly data?: Uint8Array | string | null;
  /** int64: a decimal string (`longs: String`), a number or a Long, depending on the transport. */
  readonly dataCrc32c?: string | number | { toString(): string } | null;
}
interface SecretManagerServiceClient {
  accessSecretVersion(
    request: { readonly name: string },
    callOptions: { readonly retry: null },
  ): Promise<[{ readonly payload?: SecretPayload | null }, ...unknown[]]>;
  close(): Promise<void>;
}
interface SecretManagerModule {
  readonly SecretManagerServiceClient: new (options: Record<string, unknown>) => SecretManagerServiceClient;
}

const GRPC_STATUS = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;
/** gRPC codes worth another attempt; everything else (NOT_FOUND, PERMISSION_DENIED, …) is permanent. */
const RETRYABLE_STATUS = new Set([
  "RESOURCE_EXHAUSTED",
  "UNAVAILABLE",
  "DEADLINE_EXCEEDED",
  "INTERNAL",
  "ABORTED",
]);

/**
 * Reads a Cloud SQL binding's password from GCP Secret Manager (`AccessSecretVersion` on
 * `passwordSecretName`). The payload is decoded as UTF-8 and checked against its CRC32C when the
 * service sent one.
 *
 * A client is created and closed per call, with the library's own retries off: the resolver retries
 * with its own budget. `options.gcp` supplies the endpoint, transport and auth client; `protocol:
 * "http"` selects the REST transport (for local test servers).
 */
export const fetchCloudSqlSecret: CloudSqlFetcher = async (bindingName, binding, options) => {
  const sdk = await loadOptionalModule<SecretManagerModule>("@google-cloud/secret-manager", {
    bindingName,
    service: binding.service,
    install: "the GCP Secret Manager client",
  });
  const gcp = options.gcp ?? {};
  const fail = (problem: string, retryable: boolean, cause?: unknown) =>
    secretStoreError(bindingName, binding, binding.passwordSecretName, problem, { retryable, cause });
  let client: SecretManagerServiceClient | undefined;
  let payload: SecretPayload | null | undefined;
  try {
    client = new sdk.SecretManagerServiceClient({
      ...(gcp.apiEndpoint !== undefined && { apiEndpoint: gcp.apiEndpoint }),
      ...(gcp.port !== undefined && { port: gcp.port }),
      ...(gcp.protocol !== undefined && { protocol: gcp.protocol }),
      // google-gax speaks plain http only through its REST ("fallback") transport.
      ...(gcp.protocol === "http" && { fallback: true }),
      ...(gcp.authClient !== undefined && { authClient: gcp.authClient }),
      ...gcp.clientOptions,
    });
    [{ payload }] = await client.accessSecretVersion({ name: binding.passwordSecretName }, { retry: null });
  } catch (error) {
    const { problem, retryable, cause } = describeError(error);
    throw fail(problem, retryable, cause);
  } finally {
    await client?.close().catch(() => {});
  }
  const bytes = toBytes(payload?.data);
  if (bytes.length === 0) throw fail("the payload is empty", true);
  const expected = payload?.dataCrc32c;
  if (expected !== undefined && expected !== null && String(expected) !== String(crc32c(bytes))) {
    throw fail("the payload does not match its CRC32C checksum (corrupted in transit)", true);
  }
  try {
    return { password: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    throw fail("the payload is not valid UTF-8", false);
  }
};

function toBytes(data: Uint8Array | string | null | undefined): Uint8Array {
  if (data === undefined || data === null) return new Uint8Array();
  return typeof data === "string" ? Buffer.from(data, "base64") : data;
}

interface GoogleErrorShape {
  readonly name?: unknown;
  readonly code?: unknown;
  readonly status?: unknown;
  readonly message?: unknown;
  readonly details?: unknown;
}

/**
 * Errors arrive as a google-gax `GoogleError` with a gRPC `code` (gRPC transport), or as a
 * `GaxiosError` with the HTTP status in `status`/`code` and the JSON error body as message (REST).
 */
function describeError(error: unknown): { problem: string; retryable: boolean; cause?: unknown } {
  const { name, code, status, message, details } = (error ?? {}) as GoogleErrorShape;
  const http = [status, code].find((value): value is number => typeof value === "number" && value >= 100);
  // A successful response that failed to parse: the parse error quotes the body, so it is dropped.
  if (name === "SyntaxError" || (http !== undefined && http < 300)) {
    return { problem: "the response could not be read", retryable: true };
  }
  const body = parseGoogleError(message);
  let statusName: string | undefined = typeof code === "number" && code < 100 ? GRPC_STATUS[code] : undefined;
  statusName ??= body.status ?? (http === undefined ? undefined : HTTP_STATUS[http]);
  let retryable: boolean;
  if (statusName !== undefined) retryable = RETRYABLE_STATUS.has(statusName);
  else if (http !== undefined) retryable = http === 408 || http === 429 || http >= 500;
  else retryable = isNetworkError(error);
  const label = statusName ?? (typeof code === "string" ? code : "error");
  const text = body.message ?? (typeof details === "string" && details ? details : message);
  return { problem: formatProblem(label, http, text), retryable, cause: error };
}

const HTTP_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

/** The `{"error": {"status", "message"}}` body Google APIs answer errors with over REST. */
function parseGoogleError(message: unknown): { status?: string; message?: string } {
  if (typeof message !== "string" || !message.trimStart().startsWith("{")) return {};
  try {
    const { error } = JSON.parse(message) as { error?: { status?: unknown; message?: unknown } };
    return {
      ...(typeof error?.status === "string" && { status: error.status }),
      ...(typeof error?.message === "string" && { message: error.message }),
    };
  } catch {
    return {};
  }
}

let crcTable: Uint32Array | undefined;

/** CRC32C (Castagnoli), as Secret Manager computes `dataCrc32c`. */
export function crc32c(bytes: Uint8Array): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (const byte of bytes) crc = (crcTable[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
