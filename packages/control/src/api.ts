import { createRequire } from "node:module";
import { type Context, Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ControlError, invalidRequest } from "./errors.js";
import { type GatewayAddress, gatewayConnectionString, parseGatewayUrl } from "./gateway-url.js";
import { openApiDocument } from "./openapi.js";
import type { MintedCredential } from "./records.js";
import type { Registry } from "./registry.js";
import { type ConfigCreateBody, type ConfigPatchBody, validateEmpty, validateRotate } from "./validation.js";

/** Structured log sink; fields never hold secrets. */
export type ControlLog = (event: string, fields: Record<string, unknown>) => void;

export interface ApiOptions {
  /** Where clients reach the gateway, e.g. `postgres://127.0.0.1:6432` or with `?sslmode=require`. */
  readonly gatewayUrl?: string;
  readonly log?: ControlLog;
  /** Largest accepted request body, default 1 MiB. */
  readonly maxBodyBytes?: number;
}

/** The package version, reported by `GET /v1/info`. */
export const VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string })
  .version;

// Every route of the contract, for 405 answers and the Allow header.
const ROUTES: readonly (readonly [path: string, methods: readonly string[]])[] = [
  ["/healthz", ["GET"]],
  ["/v1/info", ["GET"]],
  ["/v1/openapi.json", ["GET"]],
  ["/v1/configs", ["GET", "POST"]],
  ["/v1/configs/:id", ["GET", "PATCH", "DELETE"]],
  ["/v1/configs/:id/credentials", ["GET", "POST"]],
  ["/v1/configs/:id/credentials/rotate", ["POST"]],
  ["/v1/configs/:id/credentials/:credentialId/revoke", ["POST"]],
];

/**
 * The control plane's HTTP API (docs/control-api.md) as a hono app: serve it with `app.fetch`, or call
 * `app.request()` in tests. Every route but `GET /healthz` needs `Authorization: Bearer <token>`.
 */
export function createApi(registry: Registry, options: ApiOptions = {}): Hono {
  const gateway: GatewayAddress | undefined =
    options.gatewayUrl === undefined ? undefined : parseGatewayUrl(options.gatewayUrl);
  const log: ControlLog = options.log ?? (() => {});
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  const app = new Hono();

  app.use("*", async (c, next) => {
    const started = performance.now();
    c.header("Cache-Control", "no-store");
    // Errors of later middleware and handlers are turned into responses by onError before next() returns.
    await next();
    log("http_request", {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(performance.now() - started),
    });
  });
  app.use("*", async (c, next) => {
    if (c.req.path !== "/healthz") await authenticate(c.req.header("Authorization"), registry);
    await next();
  });

  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/v1/info", (c) =>
    c.json({
      version: VERSION,
      gateway: gateway ? { host: gateway.host, port: gateway.port, sslmode: gateway.sslmode } : null,
    }),
  );
  app.get("/v1/openapi.json", (c) => c.json(openApiDocument(VERSION)));

  app.post("/v1/configs", async (c) => {
    // The registry validates the body whatever its static type says.
    const result = await registry.createConfig((await readJson(c, maxBody, true)) as ConfigCreateBody);
    return c.json(result, 201);
  });
  app.get("/v1/configs", async (c) => c.json({ configs: await registry.listConfigs() }));
  app.get("/v1/configs/:id", async (c) => c.json({ config: await registry.getConfig(c.req.param("id")) }));
  app.patch("/v1/configs/:id", async (c) =>
    c.json(
      await registry.updateConfig(c.req.param("id"), (await readJson(c, maxBody, true)) as ConfigPatchBody),
    ),
  );
  app.delete("/v1/configs/:id", async (c) => {
    await registry.deleteConfig(c.req.param("id"));
    return c.body(null, 204);
  });

  const minted = (c: Context, result: MintedCredential, configId: string) =>
    c.json(
      {
        credential: result.credential,
        password: result.password,
        connectionString: gateway
          ? gatewayConnectionString(gateway, result.credential.user, result.password, configId)
          : null,
      },
      201,
    );
  app.post("/v1/configs/:id/credentials", async (c) => {
    validateEmpty(await readJson(c, maxBody, false));
    const id = c.req.param("id");
    return minted(c, await registry.mintCredential(id), id);
  });
  app.get("/v1/configs/:id/credentials", async (c) =>
    c.json({ credentials: await registry.listCredentials(c.req.param("id")) }),
  );
  app.post("/v1/configs/:id/credentials/rotate", async (c) => {
    const grace = validateRotate(await readJson(c, maxBody, false));
    const id = c.req.param("id");
    return minted(c, await registry.rotateCredentials(id, grace), id);
  });
  app.post("/v1/configs/:id/credentials/:credentialId/revoke", async (c) => {
    validateEmpty(await readJson(c, maxBody, false));
    const credential = await registry.revokeCredential(c.req.param("id"), c.req.param("credentialId"));
    return c.json({ credential });
  });

  for (const [path, methods] of ROUTES) {
    const allow = [...methods, ...(methods.includes("GET") ? ["HEAD"] : [])].join(", ");
    app.all(path, (c) => {
      c.header("Allow", allow);
      return errorResponse(
        c,
        new ControlError(
          "METHOD_NOT_ALLOWED",
          `${c.req.method} is not allowed on ${c.req.path}; use ${allow}`,
        ),
      );
    });
  }

  app.notFound((c) =>
    errorResponse(c, new ControlError("NOT_FOUND", `no route ${c.req.method} ${c.req.path.slice(0, 200)}`)),
  );
  app.onError((error, c) => {
    if (error instanceof ControlError) {
      if (error.status >= 500) log("request_failed", { code: error.code, message: error.message });
      return errorResponse(c, error);
    }
    log("request_failed", { code: "INTERNAL", message: error.message, stack: error.stack });
    return errorResponse(c, new ControlError("INTERNAL", "internal error; see the control plane's log"));
  });
  return app;
}

async function authenticate(header: string | undefined, registry: Registry): Promise<void> {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? "");
  if (!match?.[1]) {
    throw new ControlError("UNAUTHORIZED", "missing Authorization: Bearer <token> header");
  }
  if (!(await registry.verifyApiToken(match[1]))) {
    throw new ControlError("UNAUTHORIZED", "the bearer token is not valid");
  }
}

function errorResponse(c: Context, error: ControlError): Response {
  if (error.code === "UNAUTHORIZED") c.header("WWW-Authenticate", 'Bearer realm="pgbind"');
  const body =
    error.code === "INTERNAL"
      ? { error: { code: error.code, message: "internal error; see the control plane's log" } }
      : error.toJSON();
  return c.json(body, error.status as ContentfulStatusCode);
}

/**
 * The request body as JSON. An empty body is `{}` where the contract makes the body optional
 * (`required` false), a 400 otherwise. The parser's message is not passed on: it quotes the body,
 * which may hold a password.
 */
async function readJson(c: Context, maxBody: number, required: boolean): Promise<unknown> {
  const length = Number(c.req.header("Content-Length") ?? "0");
  if (length > maxBody) throw tooLarge(maxBody);
  const text = await c.req.text();
  if (Buffer.byteLength(text) > maxBody) throw tooLarge(maxBody);
  if (text.trim() === "") {
    if (!required) return {};
    throw invalidRequest([{ field: "(root)", message: "the body is empty; send a JSON object" }]);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw invalidRequest([{ field: "(root)", message: "the body is not valid JSON; send a JSON object" }]);
  }
}

function tooLarge(maxBody: number): ControlError {
  return new ControlError("PAYLOAD_TOO_LARGE", `the body is larger than ${maxBody} bytes`);
}
