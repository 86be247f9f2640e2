import { buildQuery } from "@pgbind/protocol";

/**
 * Session parameters a client keeps across transactions in transaction mode, as PgBouncer tracks them
 * (its fixed set plus `IntervalStyle`, the default of `track_extra_parameters`). All are GUC_REPORT, so the
 * server announces every change with ParameterStatus: the gateway follows those, remembers each client's
 * values, and sets them on whichever server connection serves the client next. Names as the server
 * reports them.
 */
export const TRACKED_PARAMETERS = [
  "application_name",
  "client_encoding",
  "DateStyle",
  "IntervalStyle",
  "TimeZone",
  "standard_conforming_strings",
] as const;

export type TrackedParameter = (typeof TRACKED_PARAMETERS)[number];

const BY_LOWER_CASE: ReadonlyMap<string, TrackedParameter> = new Map(
  TRACKED_PARAMETERS.map((name) => [name.toLowerCase(), name]),
);

/** The tracked parameter `name` refers to (GUC names are case-insensitive), if any. */
export function trackedParameter(name: string): TrackedParameter | undefined {
  return BY_LOWER_CASE.get(name.toLowerCase());
}

/** The tracked parameters among `parameters` (e.g. a StartupMessage's or a server's start-up values). */
export function trackedValues(parameters: Iterable<[string, string]>): Map<TrackedParameter, string> {
  const values = new Map<TrackedParameter, string>();
  for (const [name, value] of parameters) {
    const tracked = trackedParameter(name);
    if (tracked) values.set(tracked, value);
  }
  return values;
}

/**
 * One simple Query setting every change, e.g. `SET "TimeZone" = 'UTC'; SET application_name = 'api'`.
 * A simple Query runs as one implicit transaction: a value the server refuses changes nothing.
 */
export function buildSetQuery(changes: Iterable<[TrackedParameter, string]>): Buffer {
  const statements: string[] = [];
  for (const [name, value] of changes) statements.push(`SET "${name}" = ${literal(value)}`);
  return buildQuery(statements.join("; "));
}

/**
 * A string literal that means the same whatever the session's standard_conforming_strings: escape
 * syntax (E'…') when the value has a backslash, plain quotes otherwise.
 */
function literal(value: string): string {
  return value.includes("\\")
    ? `E'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`
    : `'${value.replaceAll("'", "''")}'`;
}

/** Decodes a ParameterStatus body (name NUL value NUL); undefined when malformed. */
export function decodeParameterStatus(body: Buffer): { name: string; value: string } | undefined {
  const nameEnd = body.indexOf(0);
  if (nameEnd === -1) return undefined;
  const valueEnd = body.indexOf(0, nameEnd + 1);
  if (valueEnd === -1) return undefined;
  return {
    name: body.toString("utf8", 0, nameEnd),
    value: body.toString("utf8", nameEnd + 1, valueEnd),
  };
}
