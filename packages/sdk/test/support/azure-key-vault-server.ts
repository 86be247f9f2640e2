import { randomBytes } from "node:crypto";
import https from "node:https";
import type { AddressInfo } from "node:net";

/** Errors the fake can answer with, as Key Vault sends them. */
const ERRORS = {
  Throttled: [429, "Rate limit is exceeded. Try again in 10 seconds."],
  ServiceUnavailable: [503, "The service is temporarily unavailable."],
  Forbidden: [
    403,
    "The user, group or application 'appid=…' does not have secrets get permission on key vault 'myvault'.",
  ],
  BadParameter: [400, "The request URI contains an invalid name."],
} as const satisfies Record<string, readonly [number, string]>;
export type AzureErrorCode = keyof typeof ERRORS;

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CHALLENGE = `Bearer authorization="https://login.microsoftonline.com/${TENANT}", resource="https://vault.azure.net"`;

/** A local Azure Key Vault that answers `GET /secrets/{name}[/{version}]` over HTTPS, with the auth challenge. */
export interface FakeKeyVault {
  /** `https://127.0.0.1:<port>`, for `AzureSecretsOptions.endpoint`. */
  readonly endpoint: string;
  /** Requests received so far, challenges and failed ones included. */
  readonly requests: number;
  /** Bearer tokens received, in order. */
  readonly tokens: readonly string[];
  /** Adds a new version of a secret (the latest), returning its version id; `undefined` deletes the secret. */
  setSecret(name: string, value: string | undefined): string | undefined;
  /** Enables or disables every version of a secret. */
  setEnabled(name: string, enabled: boolean): void;
  /** Answers the next `count` authenticated requests with the given error. */
  failNext(count: number, code: AzureErrorCode): void;
  /** Answers the next authenticated request with a 200 whose body is this text (e.g. broken JSON). */
  respondRawOnce(body: string): void;
  close(): Promise<void>;
}

const SECRET_PATH = /^\/secrets\/([0-9a-zA-Z-]+)(?:\/([0-9a-f]{32}))?\/?$/;

/** Starts a {@link FakeKeyVault} on an ephemeral port of 127.0.0.1, serving the given certificate. */
export async function startFakeKeyVault(tls: { cert: string; key: string }): Promise<FakeKeyVault> {
  const secrets = new Map<
    string,
    { enabled: boolean; versions: { id: string; value: string; created: number }[] }
  >();
  const failures: AzureErrorCode[] = [];
  const tokens: string[] = [];
  let requests = 0;
  let raw: string | undefined;

  const server = https.createServer(tls, (req, res) => {
    requests++;
    req.resume();
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
      res.end(JSON.stringify(body));
    };
    const error = (status: number, code: string, message: string, headers?: Record<string, string>) =>
      send(status, { error: { code, message } }, headers);

    const authorization = req.headers.authorization;
    // Key Vault answers an unauthenticated request with the challenge naming tenant and resource.
    if (!authorization?.startsWith("Bearer ")) {
      return error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", {
        "www-authenticate": CHALLENGE,
      });
    }
    tokens.push(authorization.slice("Bearer ".length));
    const url = new URL(req.url ?? "/", "https://localhost");
    const match = SECRET_PATH.exec(url.pathname);
    if (req.method !== "GET" || !url.searchParams.get("api-version") || !match) {
      return error(400, "BadParameter", "The request URI contains an invalid name or api-version.");
    }
    if (raw !== undefined) {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(raw);
      raw = undefined;
      return;
    }
    const failure = failures.shift();
    if (failure) {
      const [status, message] = ERRORS[failure];
      return error(status, failure, message, status === 429 ? { "retry-after": "10" } : {});
    }
    const [, name = "", version] = match;
    const secret = secrets.get(name);
    const found = version ? secret?.versions.find((v) => v.id === version) : secret?.versions.at(-1);
    if (!secret || !found) {
      return error(
        404,
        "SecretNotFound",
        `A secret with (name/id) ${name}${version ? `/${version}` : ""} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.`,
      );
    }
    if (!secret.enabled) return error(403, "Forbidden", "Operation get is not allowed on a disabled secret.");
    send(200, {
      value: found.value,
      id: `https://${req.headers.host}/secrets/${name}/${found.id}`,
      attributes: {
        enabled: true,
        created: found.created,
        updated: found.created,
        recoveryLevel: "Recoverable+Purgeable",
        recoverableDays: 90,
      },
      tags: {},
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `https://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    tokens,
    setSecret(name, value) {
      if (value === undefined) {
        secrets.delete(name);
        return undefined;
      }
      const secret = secrets.get(name) ?? { enabled: true, versions: [] };
      const id = randomBytes(16).toString("hex");
      secret.versions.push({ id, value, created: Math.floor(Date.now() / 1000) });
      secrets.set(name, secret);
      return id;
    },
    setEnabled(name, enabled) {
      const secret = secrets.get(name);
      if (secret) secret.enabled = enabled;
    },
    failNext(count, code) {
      for (let i = 0; i < count; i++) failures.push(code);
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
