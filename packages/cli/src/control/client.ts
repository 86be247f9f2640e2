import { CliError } from "../errors.js";
import type { ControlTarget } from "./discovery.js";
import type {
  ApiErrorBody,
  Config,
  ConfigInput,
  ConfigWithWarnings,
  Credential,
  Info,
  MintedCredential,
  Problem,
} from "./types.js";

/** Create and update probe the origin for up to 5 s; leave room for that and a slow network. */
const DEFAULT_TIMEOUT_MS = 30_000;
const MASK = "********";
const MIN_MASKED_LENGTH = 4;

/** Which command-line flag sets each API field, so a 400 names what to change. */
const FIELD_FLAGS: Readonly<Record<string, string>> = {
  name: "<name>",
  connectionString: "--connection-string",
  "origin.host": "--origin-host",
  "origin.port": "--origin-port",
  "origin.database": "--database",
  "origin.user": "--origin-user",
  "origin.password": "--origin-password",
  "origin.sslmode": "--sslmode",
  "origin.sslrootcert": "--sslrootcert",
  poolMode: "--pool-mode",
  poolSize: "--pool-size",
  graceSeconds: "--grace-seconds",
};

export interface ControlClientOptions {
  readonly timeoutMs?: number;
  /** Values to mask in any message built from a response (e.g. the origin password just sent). */
  readonly secrets?: readonly string[];
}

/**
 * A client for the control plane API v1 (docs/control-api.md). Every failure is a {@link CliError}:
 * `CONTROL_UNREACHABLE`, `CONTROL_UNAUTHORIZED`, `NOT_FOUND`, `CONFLICT`, `INVALID` (each problem
 * listed) or `CONTROL_FAILED`. The token only ever goes into the Authorization header.
 */
export class ControlClient {
  readonly target: ControlTarget;
  readonly #timeoutMs: number;
  readonly #secrets: string[];

  constructor(target: ControlTarget, options: ControlClientOptions = {}) {
    this.target = target;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // Very short secrets are not masked: replacing every "p" would garble messages, and the control
    // plane never echoes a secret anyway; this is defence in depth.
    this.#secrets = [...(options.secrets ?? []), ...(target.token === undefined ? [] : [target.token])]
      .filter((s) => s.length >= MIN_MASKED_LENGTH)
      .sort((a, b) => b.length - a.length);
  }

  get url(): string {
    return this.target.url;
  }

  info(): Promise<Info> {
    return this.#request<Info>("GET", "/v1/info");
  }

  async listConfigs(): Promise<{ configs: Config[] }> {
    return this.#request("GET", "/v1/configs");
  }

  getConfig(id: string): Promise<{ config: Config }> {
    return this.#request("GET", `/v1/configs/${encodeURIComponent(id)}`);
  }

  createConfig(body: ConfigInput): Promise<ConfigWithWarnings> {
    return this.#request("POST", "/v1/configs", body);
  }

  updateConfig(id: string, body: ConfigInput): Promise<ConfigWithWarnings> {
    return this.#request("PATCH", `/v1/configs/${encodeURIComponent(id)}`, body);
  }

  async deleteConfig(id: string): Promise<void> {
    await this.#request("DELETE", `/v1/configs/${encodeURIComponent(id)}`);
  }

  listCredentials(configId: string): Promise<{ credentials: Credential[] }> {
    return this.#request("GET", `/v1/configs/${encodeURIComponent(configId)}/credentials`);
  }

  mintCredential(configId: string): Promise<MintedCredential> {
    return this.#request("POST", `/v1/configs/${encodeURIComponent(configId)}/credentials`, {});
  }

  rotateCredentials(configId: string, graceSeconds?: number): Promise<MintedCredential> {
    return this.#request(
      "POST",
      `/v1/configs/${encodeURIComponent(configId)}/credentials/rotate`,
      graceSeconds === undefined ? {} : { graceSeconds },
    );
  }

  revokeCredential(configId: string, credentialId: string): Promise<{ credential: Credential }> {
    return this.#request(
      "POST",
      `/v1/configs/${encodeURIComponent(configId)}/credentials/${encodeURIComponent(credentialId)}/revoke`,
    );
  }

  async #request<T>(method: string, route: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.target.token !== undefined) headers.authorization = `Bearer ${this.target.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(`${this.target.url}${route}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw this.#unreachable(error);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw this.#unreachable(error);
    }
    if (response.ok) {
      if (response.status === 204 || text === "") return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new CliError(
          "CONTROL_FAILED",
          `${this.target.url} answered ${method} ${route} with something that is not JSON; is it a pgbind control plane?`,
        );
      }
    }
    throw this.#failure(method, route, response.status, text);
  }

  #unreachable(error: unknown): CliError {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const name = (error as Error).name;
    const why =
      name === "TimeoutError" || name === "AbortError"
        ? `no answer within ${this.#timeoutMs / 1000} s`
        : cause?.message === "bad port"
          ? `fetch refuses port ${new URL(this.target.url).port} (a "bad port" of the Fetch standard); use another port`
          : (cause?.code ?? cause?.message ?? (error as Error).message);
    const hint =
      this.target.unreachableHint ??
      "start one with `pgbind control` (from this directory it is then found automatically), or point --control-url / PGBIND_CONTROL_URL at a running one";
    return new CliError(
      "CONTROL_UNREACHABLE",
      this.#mask(
        `cannot reach the control plane at ${this.target.url} (from ${this.target.urlSource}): ${why}; ${hint}`,
      ),
    );
  }

  #failure(method: string, route: string, status: number, text: string): CliError {
    const body = parseErrorBody(text);
    const message = this.#mask(body?.message ?? `HTTP ${status}`);
    switch (status) {
      case 401:
        return new CliError(
          "CONTROL_UNAUTHORIZED",
          this.target.token === undefined
            ? `the control plane at ${this.target.url} needs a token and none was found (${this.target.tokenSource}). Pass --token or set PGBIND_TOKEN (the token was printed on the first start of \`pgbind control\` and saved in its data dir as "token")`
            : `the control plane at ${this.target.url} refused the token from ${this.target.tokenSource}; check that it belongs to this control plane (its data dir has the right one in "token")`,
        );
      case 404:
        if (body !== undefined)
          return new CliError(
            "NOT_FOUND",
            route.includes("/credentials/")
              ? `${message}; \`pgbind credentials list <config-id>\` shows the credentials`
              : `${message}; \`pgbind configs list\` shows the configs`,
          );
        break;
      case 409:
        if (body !== undefined)
          return new CliError(
            "CONFLICT",
            `${message}; choose another name, or change that config with \`pgbind configs update <id>\``,
          );
        break;
      case 400:
      case 413:
      case 422:
        if (body !== undefined) {
          const problems = (body.problems ?? []).map((p) => `  ${this.#problem(p)}`);
          return new CliError(
            "INVALID",
            problems.length === 0
              ? `the control plane rejected the request: ${message}`
              : `the control plane rejected the request:\n${problems.join("\n")}`,
          );
        }
        break;
    }
    return new CliError(
      "CONTROL_FAILED",
      `the control plane at ${this.target.url} answered ${method} ${route} with ${status}: ${message}`,
    );
  }

  #problem(problem: Problem): string {
    const flag = FIELD_FLAGS[problem.field] ?? FIELD_FLAGS[problem.field.replace(/\[\d+\].*$/, "")];
    return this.#mask(`${problem.field}${flag === undefined ? "" : ` (${flag})`}: ${problem.message}`);
  }

  #mask(text: string): string {
    let out = text;
    for (const secret of this.#secrets) out = out.replaceAll(secret, MASK);
    return out;
  }
}

function parseErrorBody(text: string): ApiErrorBody["error"] | undefined {
  try {
    const value = JSON.parse(text) as Partial<ApiErrorBody>;
    const error = value.error;
    if (typeof error !== "object" || error === null || typeof error.message !== "string") return undefined;
    return {
      code: String(error.code),
      message: error.message,
      ...(Array.isArray(error.problems)
        ? {
            problems: error.problems.filter(
              (p): p is Problem => typeof p?.field === "string" && typeof p.message === "string",
            ),
          }
        : {}),
    };
  } catch {
    return undefined;
  }
}
