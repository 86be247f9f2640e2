import type { BindingConfig } from "./config.js";

/**
 * What a new config changes in the bindings, by binding id. Holds ids and field names only, never a
 * value, so it can be logged whatever the fields hold (origin passwords, SCRAM verifiers).
 */
export interface BindingChanges {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Each changed binding with the paths of the fields that differ, e.g. `["poolSize", "origin.host"]`. */
  readonly changed: readonly { readonly id: string; readonly fields: readonly string[] }[];
}

/** Compares two binding lists by id. */
export function diffBindings(
  previous: readonly BindingConfig[],
  next: readonly BindingConfig[],
): BindingChanges {
  const before = new Map(previous.map((b) => [b.id, b]));
  const after = new Set(next.map((b) => b.id));
  const added: string[] = [];
  const changed: { id: string; fields: string[] }[] = [];
  for (const binding of next) {
    const old = before.get(binding.id);
    if (!old) added.push(binding.id);
    else {
      const fields = differingFields(old, binding, "");
      if (fields.length > 0) changed.push({ id: binding.id, fields });
    }
  }
  const removed = previous.filter((b) => !after.has(b.id)).map((b) => b.id);
  return { added, removed, changed };
}

/**
 * Paths of the fields that differ, descending into nested objects (origin, timeouts) but not into
 * arrays: a change to any credential reports `credentials`.
 */
function differingFields(a: object, b: object, prefix: string): string[] {
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(left), ...Object.keys(right)])];
  return keys.flatMap((key) => {
    const [x, y] = [left[key], right[key]];
    if (isPlainObject(x) && isPlainObject(y)) return differingFields(x, y, `${prefix}${key}.`);
    return JSON.stringify(x) === JSON.stringify(y) ? [] : [`${prefix}${key}`];
  });
}

function isPlainObject(value: unknown): value is object {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}
