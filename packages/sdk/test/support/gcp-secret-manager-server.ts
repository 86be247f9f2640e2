import http from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { grpc, protobuf } from "google-gax";
import { crc32c } from "../../src/secrets/gcp.ts";

/** Google's canonical status codes the fake uses: gRPC code and HTTP status. */
const STATUS = {
  INVALID_ARGUMENT: [3, 400],
  NOT_FOUND: [5, 404],
  PERMISSION_DENIED: [7, 403],
  RESOURCE_EXHAUSTED: [8, 429],
  FAILED_PRECONDITION: [9, 400],
  INTERNAL: [13, 500],
  UNAVAILABLE: [14, 503],
  UNAUTHENTICATED: [16, 401],
} as const satisfies Record<string, readonly [number, number]>;
type Status = keyof typeof STATUS;

const INJECTABLE = {
  RESOURCE_EXHAUSTED: "Quota exceeded for quota metric 'Access requests' and limit 'per minute'.",
  UNAVAILABLE: "The service is currently unavailable.",
  INTERNAL: "Internal error encountered.",
  PERMISSION_DENIED: "Permission 'secretmanager.versions.access' denied for resource.",
} as const satisfies Partial<Record<Status, string>>;
export type GcpErrorStatus = keyof typeof INJECTABLE;

/** How a stored version answers: its checksum can be left out or wrong, the version disabled. */
export interface StoredGcpSecret {
  readonly value: string;
  readonly crc32c?: "omit" | "wrong";
  readonly disabled?: boolean;
}

/**
 * A local GCP Secret Manager answering `AccessSecretVersion` over its REST (JSON) API on `port` and
 * over gRPC (plaintext) on `grpcPort`, both from the same store.
 */
export interface FakeSecretManager {
  /** `127.0.0.1`, for `GcpSecretsOptions.apiEndpoint`. */
  readonly apiEndpoint: string;
  readonly port: number;
  readonly grpcPort: number;
  /** Requests received so far on either transport, failed ones included. */
  readonly requests: number;
  /** The `Authorization` header of the last REST request. */
  readonly lastAuthorization: string | undefined;
  /** Stores (or, with `undefined`, deletes) what a resource name (`projects/…/versions/…`) resolves to. */
  setSecret(name: string, secret: StoredGcpSecret | string | undefined): void;
  /** Answers the next `count` requests with the given error. */
  failNext(count: number, status: GcpErrorStatus): void;
  /** Answers the next REST request with a 200 whose body is this text (e.g. broken JSON). */
  respondRawOnce(body: string): void;
  close(): Promise<void>;
}

type Outcome =
  | { readonly ok: true; readonly name: string; readonly data: Buffer; readonly dataCrc32c?: number }
  | { readonly ok: false; readonly status: Status; readonly message: string };

const ACCESS_PATH = /^\/v1\/(projects\/[^/]+\/secrets\/[^/]+\/versions\/[^/:]+):access$/;
const GRPC_METHOD = "/google.cloud.secretmanager.v1.SecretManagerService/AccessSecretVersion";

/** Starts a {@link FakeSecretManager} on ephemeral ports of 127.0.0.1. */
export async function startFakeSecretManager(): Promise<FakeSecretManager> {
  const secrets = new Map<string, StoredGcpSecret & { version: number }>();
  const failures: GcpErrorStatus[] = [];
  let requests = 0;
  let versions = 0;
  let lastAuthorization: string | undefined;
  let raw: string | undefined;

  const access = (name: string): Outcome => {
    requests++;
    const failure = failures.shift();
    if (failure) return { ok: false, status: failure, message: INJECTABLE[failure] };
    const secret = secrets.get(name);
    if (secret === undefined) {
      return {
        ok: false,
        status: "NOT_FOUND",
        message: `Secret Version [${name}] not found or has no versions.`,
      };
    }
    if (secret.disabled) {
      return {
        ok: false,
        status: "FAILED_PRECONDITION",
        message: `Secret Version [${name}] is in DISABLED state.`,
      };
    }
    const data = Buffer.from(secret.value, "utf8");
    const checksum = crc32c(data);
    const [, project = "", , secretId = ""] = name.split("/");
    return {
      ok: true,
      // The service answers with the project number and the concrete version, whatever was asked.
      name: `projects/${/^\d+$/.test(project) ? project : "123456789012"}/secrets/${secretId}/versions/${secret.version}`,
      data,
      ...(secret.crc32c !== "omit" && { dataCrc32c: secret.crc32c === "wrong" ? checksum ^ 1 : checksum }),
    };
  };

  const rest = http.createServer((req, res) => {
    lastAuthorization = req.headers.authorization;
    req.resume();
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json; charset=UTF-8" });
      res.end(JSON.stringify(body));
    };
    const fail = (status: Status, message: string) =>
      send(STATUS[status][1], { error: { code: STATUS[status][1], message, status } });
    const url = new URL(req.url ?? "/", "http://localhost");
    const name = ACCESS_PATH.exec(decodeURIComponent(url.pathname))?.[1];
    // The REST transport sends GET; a body-less POST is accepted too.
    if (name === undefined || (req.method !== "GET" && req.method !== "POST")) {
      requests++;
      return fail("NOT_FOUND", `The requested URL ${url.pathname} was not found on this server.`);
    }
    if (!req.headers.authorization?.startsWith("Bearer ")) {
      requests++;
      return fail("UNAUTHENTICATED", "Request is missing required authentication credential.");
    }
    if (raw !== undefined) {
      requests++;
      res.writeHead(200, { "content-type": "application/json; charset=UTF-8" });
      res.end(raw);
      raw = undefined;
      return;
    }
    const outcome = access(name);
    if (!outcome.ok) return fail(outcome.status, outcome.message);
    const { dataCrc32c } = outcome;
    send(200, {
      name: outcome.name,
      payload: {
        data: outcome.data.toString("base64"),
        ...(dataCrc32c !== undefined && { dataCrc32c: `${dataCrc32c}` }),
      },
    });
  });
  await new Promise<void>((resolve) => rest.listen(0, "127.0.0.1", resolve));

  // gRPC with raw-buffer (de)serialisers and the library's own proto definitions. Call credentials
  // are not sent over a plaintext channel, so this transport does not check authorization.
  const root = protobuf.Root.fromJSON(
    createRequire(import.meta.url)("@google-cloud/secret-manager/build/protos/protos.json"),
  );
  const Request = root.lookupType("google.cloud.secretmanager.v1.AccessSecretVersionRequest");
  const Response = root.lookupType("google.cloud.secretmanager.v1.AccessSecretVersionResponse");
  const grpcServer = new grpc.Server();
  grpcServer.register<Buffer, Buffer>(
    GRPC_METHOD,
    (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const { name } = Request.toObject(Request.decode(call.request)) as { name: string };
      const outcome = access(name);
      if (!outcome.ok) return callback({ code: STATUS[outcome.status][0], details: outcome.message });
      const payload = {
        data: outcome.data,
        ...(outcome.dataCrc32c !== undefined && { dataCrc32c: outcome.dataCrc32c }),
      };
      callback(
        null,
        Buffer.from(Response.encode(Response.fromObject({ name: outcome.name, payload })).finish()),
      );
    },
    (buffer) => buffer,
    (buffer) => buffer,
    "unary",
  );
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) =>
      error ? reject(error) : resolve(port),
    ),
  );

  return {
    apiEndpoint: "127.0.0.1",
    port: (rest.address() as AddressInfo).port,
    grpcPort,
    get requests() {
      return requests;
    },
    get lastAuthorization() {
      return lastAuthorization;
    },
    setSecret(name, secret) {
      if (secret === undefined) secrets.delete(name);
      else
        secrets.set(name, {
          ...(typeof secret === "string" ? { value: secret } : secret),
          version: ++versions,
        });
    },
    failNext(count, status) {
      for (let i = 0; i < count; i++) failures.push(status);
    },
    respondRawOnce(body) {
      raw = body;
    },
    close() {
      grpcServer.forceShutdown();
      rest.closeAllConnections();
      return new Promise((resolve) => rest.close(() => resolve()));
    },
  };
}
