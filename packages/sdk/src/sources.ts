import { PgBindError } from "./errors.js";

/** An environment to read bindings from: `process.env`, or the `env` an edge runtime hands a handler. */
export type BindingEnv = Readonly<Record<string, unknown>>;

/** A binding as found, before validation. */
export interface RawBinding {
  /** Human-readable origin, e.g. `PGBIND_DB_BINDING` or `/bindings/db`. */
  readonly source: string;
  readonly value: unknown;
}

const BINDING_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const ENV_BINDING = /^PGBIND_([A-Z0-9_]+)_BINDING$/;

/** `orders-db` → `PGBIND_ORDERS_DB_BINDING`. */
export function bindingEnvName(name: string): string {
  return `PGBIND_${name.toUpperCase().replaceAll("-", "_")}_BINDING`;
}

export function checkBindingName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !BINDING_NAME.test(name)) {
    throw new PgBindError(
      "INVALID_BINDING_CONFIG",
      `binding name ${JSON.stringify(name)} is not valid; use letters, digits, "-" and "_" (e.g. "db" or "orders-db")`,
      { bindingName: typeof name === "string" ? name : undefined },
    );
  }
}

/**
 * Finds a binding: first the `PGBIND_<NAME>_BINDING` variable, then a Kubernetes Service Binding
 * directory `$SERVICE_BINDING_ROOT/<name>/`. Throws BINDING_NOT_FOUND naming both places and the
 * bindings that do exist.
 */
export async function findBinding(
  name: string,
  env: BindingEnv,
  serviceBindingRoot?: string,
): Promise<RawBinding> {
  const variable = bindingEnvName(name);
  const raw = env[variable];
  if (raw !== undefined) {
    if (typeof raw !== "string") {
      // Edge runtimes may hand over already-parsed JSON bindings.
      return { source: variable, value: raw };
    }
    return { source: variable, value: parseJson(name, variable, raw) };
  }
  const root = serviceBindingRoot ?? stringOrUndefined(env.SERVICE_BINDING_ROOT);
  if (root !== undefined) {
    const { readServiceBinding } = await import("./kubernetes.js");
    const found = await readServiceBinding(root, name);
    if (found) return found;
  }
  const available = await listBindings(env, root);
  const looked = root === undefined ? variable : `${variable} or ${root.replace(/\/$/, "")}/${name}/`;
  throw new PgBindError(
    "BINDING_NOT_FOUND",
    `no Postgres binding "${name}": looked for ${looked}. ` +
      (available.length > 0
        ? `Bindings present: ${available.join(", ")}.`
        : "No Postgres bindings are present; link the database to this workload (or run it under `pgbind dev`/`pgbind run`)."),
    { bindingName: name },
  );
}

async function listBindings(env: BindingEnv, root: string | undefined): Promise<string[]> {
  const names: string[] = [];
  for (const key of Object.keys(env)) {
    const match = ENV_BINDING.exec(key);
    if (match?.[1]) names.push(`"${match[1].toLowerCase().replaceAll("_", "-")}" (${key})`);
  }
  if (root !== undefined) {
    const { listServiceBindings } = await import("./kubernetes.js");
    for (const dir of await listServiceBindings(root))
      names.push(`"${dir}" (${root.replace(/\/$/, "")}/${dir}/)`);
  }
  return names.sort();
}

function parseJson(name: string, variable: string, raw: string): unknown {
  if (raw.trim() === "") {
    throw new PgBindError(
      "INVALID_BINDING_CONFIG",
      `binding "${name}" (${variable}) is empty; expected a JSON object`,
      {
        bindingName: name,
      },
    );
  }
  try {
    return JSON.parse(raw);
  } catch (error) {
    // V8's message quotes the input, which may hold the password: report only the position.
    const position = /position (\d+)/.exec(String((error as Error).message))?.[1];
    throw new PgBindError(
      "INVALID_BINDING_CONFIG",
      `binding "${name}" (${variable}) is not valid JSON${position ? ` (syntax error at character ${position})` : ""}; expected an object like {"service":"external","host":…}`,
      { bindingName: name },
    );
  }
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}
