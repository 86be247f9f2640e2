import { buildQuery } from "@pgbind/protocol";

/**
 * Session-level features a transaction pooler cannot give a client, because its server connection
 * goes to other clients after each transaction: they would silently break (a LISTEN that never hears,
 * a PREPAREd name that vanishes, a lock held by someone else's session).
 */
const SESSION_FEATURES: readonly [RegExp, string][] = [
  [/^\s*LISTEN\b/i, "LISTEN"],
  [/^\s*PREPARE\b/i, "PREPARE (SQL-level prepared statements)"],
  [/\bpg_(try_)?advisory_lock(_shared)?\s*\(/i, "session-level advisory locks"],
  [/^\s*DECLARE\b[^;]*\bWITH\s+HOLD\b/i, "cursors WITH HOLD"],
];

/** What the gateway must know about a client statement (leading comments stripped once). */
export interface StatementFacts {
  /**
   * It may change session state that would outlive the transaction: a SET that is not SET LOCAL, RESET,
   * set_config(…, false), or DISCARD. Such a server connection is reset (RESET ALL) before it goes back to
   * the pool, so the next client never inherits it.
   */
  readonly changesState: boolean;
  /** The server has no prepared statements left after it: DEALLOCATE ALL, DISCARD ALL. */
  readonly dropsStatements: boolean;
  /** The session-level feature it uses, which transaction pooling refuses. */
  readonly feature: string | undefined;
}

export function inspectStatement(sql: string): StatementFacts {
  const text = stripLeadingComments(sql);
  return {
    changesState: changesStateIn(text),
    dropsStatements: dropsStatementsIn(text),
    feature: featureIn(text),
  };
}

function featureIn(text: string): string | undefined {
  for (const [pattern, name] of SESSION_FEATURES) if (pattern.test(text)) return name;
  return undefined;
}

function stripLeadingComments(sql: string): string {
  let text = sql;
  for (;;) {
    const trimmed = text.trimStart();
    if (trimmed.startsWith("--")) {
      const newline = trimmed.indexOf("\n");
      text = newline === -1 ? "" : trimmed.slice(newline + 1);
    } else if (trimmed.startsWith("/*")) {
      const end = trimmed.indexOf("*/");
      text = end === -1 ? "" : trimmed.slice(end + 2);
    } else return trimmed;
  }
}

/**
 * A query that makes the server itself raise SQLSTATE 0A000, so the error reaches the client in the
 * right place of the protocol and an open transaction is marked failed exactly as PostgreSQL would.
 */
export function refusalQuery(feature: string): Buffer {
  const message = `${feature} is not supported in transaction pooling mode`;
  const hint =
    "pgbind shares server connections between clients after each transaction; use a binding in session mode for session-level features";
  const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
  return buildQuery(
    `DO $pgbind$ BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = ${quote(message)}, HINT = ${quote(hint)}; END $pgbind$`,
  );
}

function changesStateIn(text: string): boolean {
  if (/^SET\s+(?!LOCAL\b)/i.test(text) || /^RESET\b/i.test(text)) return true;
  if (/;\s*(SET\s+(?!LOCAL\b)|RESET\b)/i.test(text)) return true;
  if (/(^|;)\s*DISCARD\b/i.test(text)) return true;
  return /\bset_config\s*\(/i.test(text);
}

const KEYWORDS = ["set", "listen", "prepare", "advisory", "hold", "deallocate", "discard"].map((word) =>
  Buffer.from(word),
);
/** The keywords by their first letter (lower case): most bytes of a statement start none of them. */
const KEYWORDS_BY_FIRST: (Buffer[] | undefined)[] = Array.from({ length: 256 }, () => undefined);
for (const word of KEYWORDS) {
  const first = word[0] as number;
  KEYWORDS_BY_FIRST[first] = [...(KEYWORDS_BY_FIRST[first] ?? []), word];
}

/**
 * A byte-level pre-check on a Parse payload for {@link inspectStatement}:
 * false when none of its keywords (set, listen, prepare, advisory, hold, deallocate, discard) occurs in any letter case, so
 * the common statement is never decoded.
 */
export function mayNeedInspection(payload: Uint8Array): boolean {
  const end = payload.length;
  for (let i = 0; i < end; i++) {
    // `| 0x20` folds ASCII upper case to lower case.
    const candidates = KEYWORDS_BY_FIRST[(payload[i] as number) | 0x20];
    if (candidates === undefined) continue;
    for (const word of candidates) {
      if (i + word.length > end) continue;
      let j = 1;
      while (j < word.length && ((payload[i + j] as number) | 0x20) === word[j]) j++;
      if (j === word.length) return true;
    }
  }
  return false;
}

function dropsStatementsIn(text: string): boolean {
  return /\b(DEALLOCATE\s+(PREPARE\s+)?ALL|DISCARD\s+ALL)\b/i.test(text);
}
