import http from "node:http";
import type { AddressInfo } from "node:net";

/** Errors the fake can answer with, as AWS Secrets Manager sends them. */
const ERRORS = {
  ThrottlingException: [400, "Rate exceeded"],
  ResourceNotFoundException: [400, "Secrets Manager can't find the specified secret."],
  AccessDeniedException: [
    400,
    "User: arn:aws:sts::123456789012:assumed-role/app/i-0 is not authorized to perform: secretsmanager:GetSecretValue",
  ],
  InvalidRequestException: [
    400,
    "You can't perform this operation on the secret because it was marked for deletion.",
  ],
  InternalServiceError: [500, "An error occurred on the server side."],
} as const satisfies Record<string, readonly [number, string]>;
export type AwsErrorType = keyof typeof ERRORS;

/** What a stored secret holds: a string, or binary data. */
export type StoredAwsSecret = string | { readonly binary: Uint8Array };

/** A local AWS Secrets Manager that answers `GetSecretValue` over its real JSON 1.1 wire protocol. */
export interface FakeSecretsManager {
  /** `http://127.0.0.1:<port>`, for `AwsSecretsOptions.endpoint`. */
  readonly endpoint: string;
  /** Requests received so far, failed ones included. */
  readonly requests: number;
  /** Stores (or, with `undefined`, deletes) the current version of a secret, keyed by ARN. */
  setSecret(arn: string, value: StoredAwsSecret | undefined): void;
  /** Answers the next `count` requests with the given error. */
  failNext(count: number, error: AwsErrorType): void;
  /** Answers the next request with a 200 whose body is this text (e.g. broken JSON). */
  respondRawOnce(body: string): void;
  close(): Promise<void>;
}

/** Starts a {@link FakeSecretsManager} on an ephemeral port of 127.0.0.1. */
export async function startFakeSecretsManager(): Promise<FakeSecretsManager> {
  const secrets = new Map<string, { value: StoredAwsSecret; version: number }>();
  const failures: AwsErrorType[] = [];
  let raw: string | undefined;
  let requests = 0;
  let versions = 0;

  const server = http.createServer((req, res) => {
    requests++;
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const send = (status: number, body: unknown, errorType?: string) => {
        res.writeHead(status, {
          "content-type": "application/x-amz-json-1.1",
          "x-amzn-requestid": `req-${requests}`,
          ...(errorType && { "x-amzn-errortype": errorType }),
        });
        res.end(typeof body === "string" ? body : JSON.stringify(body));
      };
      const error = (type: string, status: number, message: string) =>
        send(status, { __type: type, message }, type);

      if (req.method !== "POST" || req.headers["x-amz-target"] !== "secretsmanager.GetSecretValue") {
        return error("UnknownOperationException", 400, "");
      }
      if (!req.headers.authorization?.startsWith("AWS4-HMAC-SHA256 Credential=")) {
        return error("MissingAuthenticationTokenException", 400, "Missing Authentication Token");
      }
      if (!req.headers["content-type"]?.startsWith("application/x-amz-json-1.1")) {
        return error("SerializationException", 400, "Unsupported content type");
      }
      const failure = failures.shift();
      if (failure) return error(failure, ERRORS[failure][0], ERRORS[failure][1]);
      if (raw !== undefined) {
        const body = raw;
        raw = undefined;
        return send(200, body);
      }
      const { SecretId } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { SecretId?: string };
      const secret = SecretId === undefined ? undefined : secrets.get(SecretId);
      if (SecretId === undefined || secret === undefined) {
        return error("ResourceNotFoundException", 400, ERRORS.ResourceNotFoundException[1]);
      }
      const { value, version } = secret;
      return send(200, {
        ARN: SecretId,
        Name: SecretId.split(":secret:")[1]?.replace(/-[A-Za-z0-9]{6}$/, ""),
        VersionId: `00000000-0000-4000-8000-${String(version).padStart(12, "0")}`,
        ...(typeof value === "string"
          ? { SecretString: value }
          : { SecretBinary: Buffer.from(value.binary).toString("base64") }),
        VersionStages: ["AWSCURRENT"],
        CreatedDate: 1_700_000_000 + version,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    setSecret(arn, value) {
      if (value === undefined) secrets.delete(arn);
      else secrets.set(arn, { value, version: ++versions });
    },
    failNext(count, error) {
      for (let i = 0; i < count; i++) failures.push(error);
    },
    respondRawOnce(body) {
      raw = body;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
