import { DEFAULT_POOL_SIZE, DEFAULT_TIMEOUTS, ORIGIN_SSL_MODES, POOL_MODES } from "@pgbind/gateway";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Json) => ({ "application/json": { schema } });
const response = (description: string, schema?: Json) => ({
  description,
  ...(schema ? { content: json(schema) } : {}),
});
const error = (description: string) => response(description, ref("Error"));
const idParam = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string", pattern: "^pgb_[A-Za-z0-9_-]{24}$" },
};
const credentialIdParam = {
  name: "credentialId",
  in: "path",
  required: true,
  schema: { type: "string", pattern: "^pgc_[A-Za-z0-9_-]{24}$" },
};
const common = {
  "401": error("No bearer token, or a wrong one (`UNAUTHORIZED`)"),
  "503": error("The registry store is unavailable (`STORE_UNAVAILABLE`, retryable)"),
};
const withBody = {
  "400": error("Not JSON, or invalid: `problems` names every bad field (`INVALID_REQUEST`)"),
};
const notFound = { "404": error("Unknown config or credential id (`NOT_FOUND`)") };

const timeouts = {
  type: "object",
  additionalProperties: false,
  description: "Milliseconds; 0 disables one.",
  properties: Object.fromEntries(
    Object.entries(DEFAULT_TIMEOUTS).map(([key, value]) => [
      key,
      { type: "integer", minimum: 0, maximum: 604_800_000, default: value },
    ]),
  ),
};
const sslmode = { type: "string", enum: [...ORIGIN_SSL_MODES], default: "prefer" };
const pem = { type: "string", description: "PEM CA bundle for verify-ca / verify-full" };
const name = {
  type: "string",
  pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
  description: "Unique; 1–63 characters of A–Z a–z 0–9 _ . - starting with a letter or digit",
};
const identifier = { type: "string", minLength: 1, maxLength: 63 };
const port = { type: "integer", minimum: 1, maximum: 65535, default: 5432 };
const password = { type: "string", minLength: 1, maxLength: 4096, writeOnly: true };
const connectionString = {
  type: "string",
  writeOnly: true,
  description:
    "libpq URI postgres://user:password@host:5432/database?sslmode=…; replaces `origin` (which may then hold only sslrootcert)",
};
const settings = {
  poolMode: { type: "string", enum: [...POOL_MODES], default: "transaction" },
  poolSize: { type: "integer", minimum: 1, maximum: 10_000, default: DEFAULT_POOL_SIZE },
  timeouts,
};
const time = { type: "string", format: "date-time" };
const nullableTime = { type: ["string", "null"], format: "date-time" };

const schemas = {
  Error: {
    type: "object",
    required: ["error"],
    properties: {
      error: {
        type: "object",
        required: ["code", "message"],
        properties: {
          code: { type: "string", examples: ["INVALID_REQUEST", "UNAUTHORIZED", "NOT_FOUND", "CONFLICT"] },
          message: { type: "string" },
          problems: { type: "array", items: ref("Problem") },
        },
      },
    },
  },
  Problem: {
    type: "object",
    required: ["field", "message"],
    properties: {
      field: { type: "string", description: "JSON path, e.g. origin.port", examples: ["origin.port"] },
      message: { type: "string", description: "What would be valid; never a secret value" },
    },
  },
  Warning: {
    type: "object",
    required: ["code", "message"],
    properties: {
      code: {
        type: "string",
        enum: [
          "ORIGIN_DNS",
          "ORIGIN_UNREACHABLE",
          "ORIGIN_TLS_REQUIRED",
          "ORIGIN_TLS_FAILED",
          "ORIGIN_AUTH_FAILED",
          "ORIGIN_DATABASE_MISSING",
        ],
      },
      message: { type: "string" },
    },
  },
  Origin: {
    type: "object",
    required: ["host", "port", "database", "user", "sslmode"],
    properties: {
      host: { type: "string" },
      port,
      database: identifier,
      user: identifier,
      sslmode,
      sslrootcert: pem,
    },
  },
  Timeouts: timeouts,
  Config: {
    type: "object",
    required: ["id", "name", "origin", "poolMode", "poolSize", "timeouts", "createdAt", "updatedAt"],
    properties: {
      id: { type: "string", pattern: "^pgb_[A-Za-z0-9_-]{24}$" },
      name,
      origin: ref("Origin"),
      ...settings,
      timeouts: ref("Timeouts"),
      createdAt: time,
      updatedAt: time,
    },
  },
  Credential: {
    type: "object",
    required: ["id", "configId", "user", "status", "createdAt", "expiresAt", "revokedAt"],
    properties: {
      id: { type: "string", pattern: "^pgc_[A-Za-z0-9_-]{24}$" },
      configId: { type: "string" },
      user: { type: "string", description: "The user name clients present to the gateway (pgb_u_…)" },
      status: { type: "string", enum: ["active", "expiring", "revoked", "expired"] },
      createdAt: time,
      expiresAt: nullableTime,
      revokedAt: nullableTime,
    },
  },
  OriginInput: {
    type: "object",
    additionalProperties: false,
    required: ["host", "database", "user", "password"],
    properties: {
      host: { type: "string", minLength: 1, maxLength: 255 },
      port,
      database: identifier,
      user: identifier,
      password,
      sslmode,
      sslrootcert: pem,
    },
  },
  ConfigCreate: {
    type: "object",
    additionalProperties: false,
    required: ["name"],
    anyOf: [{ required: ["origin"] }, { required: ["connectionString"] }],
    properties: { name, origin: ref("OriginInput"), connectionString, ...settings },
  },
  ConfigPatch: {
    type: "object",
    additionalProperties: false,
    description:
      "Any subset of ConfigCreate: origin fields merge (sslrootcert null removes it), connectionString replaces the origin, timeouts merge",
    properties: {
      name,
      origin: {
        type: "object",
        additionalProperties: false,
        properties: {
          host: { type: "string" },
          port,
          database: identifier,
          user: identifier,
          password,
          sslmode,
          sslrootcert: { type: ["string", "null"] },
        },
      },
      connectionString,
      ...settings,
    },
  },
  ConfigWithWarnings: {
    type: "object",
    required: ["config", "warnings"],
    properties: { config: ref("Config"), warnings: { type: "array", items: ref("Warning") } },
  },
  MintedCredential: {
    type: "object",
    required: ["credential", "password", "connectionString"],
    properties: {
      credential: ref("Credential"),
      password: { type: "string", description: "Shown only in this response" },
      connectionString: {
        type: ["string", "null"],
        description: "postgres://user:password@gateway/config-id, or null when no gateway URL is configured",
      },
    },
  },
  Info: {
    type: "object",
    required: ["version", "gateway"],
    properties: {
      version: { type: "string" },
      gateway: {
        oneOf: [
          { type: "null" },
          {
            type: "object",
            required: ["host", "port", "sslmode"],
            properties: { host: { type: "string" }, port, sslmode: { type: "string" } },
          },
        ],
      },
    },
  },
};

/** The OpenAPI 3.1 description of the API served at `GET /v1/openapi.json`. */
export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: {
      title: "pgbind control plane",
      version,
      description: "Binding configs, their credentials and rotation. See docs/control-api.md.",
    },
    security: [{ bearer: [] }],
    paths: {
      "/healthz": {
        get: {
          operationId: "health",
          security: [],
          responses: {
            "200": response("Alive", {
              type: "object",
              required: ["ok"],
              properties: { ok: { const: true } },
            }),
          },
        },
      },
      "/v1/info": {
        get: {
          operationId: "info",
          responses: { "200": response("Version and gateway address", ref("Info")), ...common },
        },
      },
      "/v1/openapi.json": {
        get: {
          operationId: "openapi",
          responses: { "200": response("This document", { type: "object" }), ...common },
        },
      },
      "/v1/configs": {
        post: {
          operationId: "createConfig",
          requestBody: { required: true, content: json(ref("ConfigCreate")) },
          responses: {
            "201": response(
              "Created; warnings say why the origin does not work yet",
              ref("ConfigWithWarnings"),
            ),
            ...withBody,
            "409": error("A config with that name exists (`CONFLICT`)"),
            ...common,
          },
        },
        get: {
          operationId: "listConfigs",
          responses: {
            "200": response("Every config, sorted by name", {
              type: "object",
              required: ["configs"],
              properties: { configs: { type: "array", items: ref("Config") } },
            }),
            ...common,
          },
        },
      },
      "/v1/configs/{id}": {
        parameters: [idParam],
        get: {
          operationId: "getConfig",
          responses: {
            "200": response("The config", {
              type: "object",
              required: ["config"],
              properties: { config: ref("Config") },
            }),
            ...notFound,
            ...common,
          },
        },
        patch: {
          operationId: "updateConfig",
          requestBody: { required: true, content: json(ref("ConfigPatch")) },
          responses: {
            "200": response("Updated", ref("ConfigWithWarnings")),
            ...withBody,
            ...notFound,
            "409": error("Another config has that name (`CONFLICT`)"),
            ...common,
          },
        },
        delete: {
          operationId: "deleteConfig",
          responses: { "204": response("Deleted, with its credentials"), ...notFound, ...common },
        },
      },
      "/v1/configs/{id}/credentials": {
        parameters: [idParam],
        post: {
          operationId: "mintCredential",
          requestBody: { required: false, content: json({ type: "object", additionalProperties: false }) },
          responses: {
            "201": response("Minted", ref("MintedCredential")),
            ...withBody,
            ...notFound,
            ...common,
          },
        },
        get: {
          operationId: "listCredentials",
          responses: {
            "200": response("Newest first, revoked and expired included", {
              type: "object",
              required: ["credentials"],
              properties: { credentials: { type: "array", items: ref("Credential") } },
            }),
            ...notFound,
            ...common,
          },
        },
      },
      "/v1/configs/{id}/credentials/rotate": {
        parameters: [idParam],
        post: {
          operationId: "rotateCredentials",
          description:
            "Mints a new credential; every active one becomes expiring with expiresAt = now + graceSeconds",
          requestBody: {
            required: false,
            content: json({
              type: "object",
              additionalProperties: false,
              properties: {
                graceSeconds: { type: "integer", minimum: 0, maximum: 2_592_000, default: 3600 },
              },
            }),
          },
          responses: {
            "201": response("Minted", ref("MintedCredential")),
            ...withBody,
            ...notFound,
            ...common,
          },
        },
      },
      "/v1/configs/{id}/credentials/{credentialId}/revoke": {
        parameters: [idParam, credentialIdParam],
        post: {
          operationId: "revokeCredential",
          responses: {
            "200": response("Revoked (idempotent)", {
              type: "object",
              required: ["credential"],
              properties: { credential: ref("Credential") },
            }),
            ...notFound,
            ...common,
          },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "The API token" } },
      schemas,
    },
  };
}
