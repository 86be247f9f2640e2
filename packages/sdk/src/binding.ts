import { PgBindError } from "./errors.js";

/** libpq's sslmode values that pgbind supports. */
export const SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof SSL_MODES)[number];

interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly username: string;
}

/** The Local platform's database (`pgbind dev`): user `postgres`, TLS off. */
export interface LocalBinding extends Endpoint {
  readonly service: "local";
  readonly password: string;
}
/** A database you run yourself (Kubernetes, on-prem, any cloud). */
export interface ExternalBinding extends Endpoint {
  readonly service: "external";
  readonly password: string;
  readonly sslmode?: SslMode;
  readonly sslrootcert?: string;
}
/** Amazon Aurora PostgreSQL; the password lives in AWS Secrets Manager. */
export interface AuroraBinding extends Endpoint {
  readonly service: "aurora";
  readonly region: string;
  readonly passwordSecretArn: string;
  readonly sslrootcert?: string;
}
/** Google Cloud SQL for PostgreSQL; the password lives in GCP Secret Manager. */
export interface CloudSqlBinding extends Endpoint {
  readonly service: "cloud-sql";
  readonly passwordSecretName: string;
  readonly serverCaCertificates?: readonly string[];
}
/** Azure Database for PostgreSQL flexible server; the password lives in Azure Key Vault. */
export interface FlexibleServerBinding extends Endpoint {
  readonly service: "flexible-server";
  readonly passwordSecretUri: string;
}
/** A pgbind gateway endpoint (the managed connection layer). */
export interface GatewayBinding extends Endpoint {
  readonly service: "gateway";
  readonly password: string;
  readonly sslmode?: SslMode;
  readonly sslrootcert?: string;
}

/** Every shape a platform may inject, tagged by `service`. */
export type Binding =
  | LocalBinding
  | ExternalBinding
  | AuroraBinding
  | CloudSqlBinding
  | FlexibleServerBinding
  | GatewayBinding;
export type BindingService = Binding["service"];
/** Bindings whose password is read from a cloud secret store. */
export type ManagedBinding = AuroraBinding | CloudSqlBinding | FlexibleServerBinding;

type FieldKind =
  | "string"
  | "secret"
  | "port"
  | "sslmode"
  | "pem"
  | "pemList"
  | "region"
  | "arn"
  | "gcpName"
  | "azureUri";
interface FieldSpec {
  readonly kind: FieldKind;
  readonly optional?: true;
}

const ENDPOINT = {
  host: { kind: "string" },
  port: { kind: "port" },
  database: { kind: "string" },
  username: { kind: "string" },
} as const satisfies Record<string, FieldSpec>;

/** The fields each service accepts; anything else is rejected. */
export const BINDING_FIELDS = {
  local: { ...ENDPOINT, password: { kind: "secret" } },
  external: {
    ...ENDPOINT,
    password: { kind: "secret" },
    sslmode: { kind: "sslmode", optional: true },
    sslrootcert: { kind: "pem", optional: true },
  },
  aurora: {
    ...ENDPOINT,
    region: { kind: "region" },
    passwordSecretArn: { kind: "arn" },
    sslrootcert: { kind: "pem", optional: true },
  },
  "cloud-sql": {
    ...ENDPOINT,
    passwordSecretName: { kind: "gcpName" },
    serverCaCertificates: { kind: "pemList", optional: true },
  },
  "flexible-server": { ...ENDPOINT, passwordSecretUri: { kind: "azureUri" } },
  gateway: {
    ...ENDPOINT,
    password: { kind: "secret" },
    sslmode: { kind: "sslmode", optional: true },
    sslrootcert: { kind: "pem", optional: true },
  },
} as const satisfies Record<BindingService, Record<string, FieldSpec>>;

export const BINDING_SERVICES = Object.keys(BINDING_FIELDS) as BindingService[];

const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const SECRET_ARN =
  /^arn:aws[a-z-]*:secretsmanager:([a-z]{2}(?:-[a-z]+)+-\d+):\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;
const GCP_SECRET_VERSION = /^projects\/[^/\s]+\/secrets\/[^/\s]+\/versions\/[^/\s]+$/;
const AZURE_VAULT_HOST =
  /^[a-z0-9-]{3,24}\.vault\.(azure\.net|azure\.cn|usgovcloudapi\.net|microsoftazure\.de)$/i;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

const EXAMPLES: Record<FieldKind, string> = {
  string: 'a non-empty string, e.g. "app"',
  secret: "a non-empty string",
  port: "an integer from 1 to 65535, e.g. 5432",
  sslmode: `one of ${SSL_MODES.join(", ")}`,
  pem: 'a PEM certificate ("-----BEGIN CERTIFICATE-----…")',
  pemList: "a non-empty array of PEM certificates",
  region: 'an AWS region, e.g. "us-east-1"',
  arn: '"arn:aws:secretsmanager:<region>:<account>:secret:<name>"',
  gcpName: '"projects/<project>/secrets/<secret>/versions/<version>" (version may be "latest")',
  azureUri: '"https://<vault>.vault.azure.net/secrets/<name>[/<version>]"',
};

/**
 * Validates a decoded binding object against the contract and returns it typed.
 * Every problem is reported at once, each naming the field and what would be valid; secret values
 * are never echoed.
 */
export function validateBinding(bindingName: string, source: string, input: unknown): Binding {
  const fail = (problems: string[]): never => {
    throw new PgBindError(
      "INVALID_BINDING_CONFIG",
      `binding "${bindingName}" (${source}) is invalid:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
      { bindingName },
    );
  };
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return fail([`expected a JSON object with a "service" field, got ${describeType(input)}`]);
  }
  const record = input as Record<string, unknown>;
  const service = record.service;
  if (typeof service !== "string" || !(service in BINDING_FIELDS)) {
    const got = typeof service === "string" ? `"${truncate(service)}"` : describeType(service);
    return fail([`service: ${got} is not a known service; use one of ${BINDING_SERVICES.join(", ")}`]);
  }
  const spec: Record<string, FieldSpec> = BINDING_FIELDS[service as BindingService];
  const problems: string[] = [];
  const output: Record<string, unknown> = { service };
  for (const key of Object.keys(record)) {
    if (key !== "service" && !(key in spec)) {
      problems.push(
        `${key}: unknown field for service "${service}"; allowed: ${Object.keys(spec).join(", ")}`,
      );
    }
  }
  for (const [field, fieldSpec] of Object.entries(spec)) {
    const value = record[field];
    if (value === undefined || value === null) {
      if (!fieldSpec.optional) problems.push(`${field}: missing; expected ${EXAMPLES[fieldSpec.kind]}`);
      continue;
    }
    const checked = checkField(fieldSpec.kind, value);
    if (typeof checked === "string")
      problems.push(`${field}: ${checked}; expected ${EXAMPLES[fieldSpec.kind]}`);
    else output[field] = checked.value;
  }
  if (output.database === "." || output.database === "..") {
    // URL parsers resolve dot segments even when percent-encoded, so no connection URL can carry these.
    problems.push(
      `database: "${output.database}" cannot be expressed in a connection URL; rename the database`,
    );
  }
  if (
    service === "aurora" &&
    typeof output.region === "string" &&
    typeof output.passwordSecretArn === "string"
  ) {
    const arnRegion = SECRET_ARN.exec(output.passwordSecretArn)?.[1];
    if (arnRegion && arnRegion !== output.region) {
      problems.push(`region: "${output.region}" does not match the secret ARN's region "${arnRegion}"`);
    }
  }
  if (problems.length > 0) fail(problems);
  return Object.freeze(output) as unknown as Binding;
}

function checkField(kind: FieldKind, value: unknown): string | { value: unknown } {
  if (typeof value === "string") {
    // Both would be mangled on the wire: startup and password messages are NUL-terminated UTF-8.
    if (value.includes("\0")) return "contains a NUL character, which PostgreSQL cannot accept";
    if (!value.isWellFormed()) return "contains an unpaired UTF-16 surrogate, which is not valid UTF-8";
  }
  switch (kind) {
    case "string":
    case "region":
    case "arn":
    case "gcpName":
    case "azureUri": {
      if (typeof value !== "string") return `got ${describeType(value)}`;
      if (value.trim() === "") return "is empty";
      if (kind === "region" && !REGION.test(value)) return `"${truncate(value)}" is not an AWS region`;
      if (kind === "arn" && !SECRET_ARN.test(value))
        return `"${truncate(value)}" is not a Secrets Manager ARN`;
      if (kind === "gcpName" && !GCP_SECRET_VERSION.test(value)) {
        return `"${truncate(value)}" is not a secret version name`;
      }
      if (kind === "azureUri") {
        const problem = checkAzureUri(value);
        if (problem) return problem;
      }
      return { value };
    }
    case "secret":
      if (typeof value !== "string") return `got ${describeType(value)}`;
      if (value === "")
        return "is empty (an empty password is never sent; pgbind does not fall back to PGPASSWORD)";
      return { value };
    case "port": {
      const port = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
      if (typeof port !== "number" || !Number.isInteger(port)) {
        return typeof value === "string"
          ? `"${truncate(value)}" is not a number`
          : `got ${describeType(value)}`;
      }
      if (port < 1 || port > 65535) return `${port} is out of range`;
      return { value: port };
    }
    case "sslmode":
      if (typeof value !== "string" || !(SSL_MODES as readonly string[]).includes(value)) {
        return typeof value === "string"
          ? `"${truncate(value)}" is not supported`
          : `got ${describeType(value)}`;
      }
      return { value };
    case "pem":
      if (typeof value !== "string") return `got ${describeType(value)}`;
      if (!PEM_CERT.test(value)) return "is not a PEM certificate";
      return { value };
    case "pemList":
      if (!Array.isArray(value) || value.length === 0) return `got ${describeType(value)}`;
      for (const [i, item] of value.entries()) {
        if (typeof item !== "string" || !PEM_CERT.test(item)) return `item ${i} is not a PEM certificate`;
      }
      return { value: Object.freeze([...value]) };
    default: {
      const exhaustive: never = kind;
      throw new Error(`unhandled field kind ${String(exhaustive)}`);
    }
  }
}

function checkAzureUri(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${truncate(value)}" is not a URL`;
  }
  if (url.protocol !== "https:") return `"${truncate(value)}" must use https`;
  if (!AZURE_VAULT_HOST.test(url.hostname)) return `"${url.hostname}" is not a Key Vault host`;
  const parts = url.pathname.split("/").filter(Boolean);
  if (parts[0] !== "secrets" || parts.length < 2 || parts.length > 3 || url.search || url.hash) {
    return `"${truncate(value)}" is not a secret URI`;
  }
  return undefined;
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return value === "" ? "an empty string" : "a string";
  return `a ${typeof value}`;
}

function truncate(value: string, max = 80): string {
  return value.length > max ? `${value.slice(0, max)}…` : value;
}
