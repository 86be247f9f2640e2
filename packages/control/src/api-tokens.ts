import { timingSafeEqual } from "node:crypto";
import type pg from "pg";
import { newApiToken, newTokenId, sha256 } from "./ids.js";

// Serialises "create the first token" across control planes starting at once on one store.
const TOKEN_LOCK = 0x7067_6269_6e65;

/** Inside a transaction: creates a token when the store has none, saving it with `save` before commit. */
export async function ensureApiToken(
  client: pg.ClientBase,
  save: (token: string) => Promise<void>,
): Promise<string | undefined> {
  await client.query("SELECT pg_advisory_xact_lock($1)", [TOKEN_LOCK]);
  const { rowCount } = await client.query("SELECT 1 FROM pgbind.api_tokens WHERE revoked_at IS NULL LIMIT 1");
  if (rowCount) return undefined;
  const token = await insertApiToken(client);
  await save(token);
  return token;
}

/** Stores a new token's SHA-256 (never the token) and returns the token. */
export async function insertApiToken(client: pg.ClientBase): Promise<string> {
  const token = newApiToken();
  await client.query("INSERT INTO pgbind.api_tokens (id, token_sha256) VALUES ($1, $2)", [
    newTokenId(),
    sha256(token),
  ]);
  return token;
}

/** True when `token` is a valid API token; compares SHA-256 hashes in constant time. */
export async function verifyApiToken(client: pg.ClientBase, token: string): Promise<boolean> {
  const presented = sha256(token);
  const { rows } = await client.query<{ token_sha256: Buffer }>(
    "SELECT token_sha256 FROM pgbind.api_tokens WHERE revoked_at IS NULL",
  );
  let valid = false;
  for (const row of rows) {
    // No early exit: the time taken does not depend on which token matched.
    if (row.token_sha256.length === presented.length && timingSafeEqual(row.token_sha256, presented))
      valid = true;
  }
  return valid;
}
