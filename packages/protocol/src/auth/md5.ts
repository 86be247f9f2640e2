// PostgreSQL's MD5 password authentication (AuthenticationMD5Password), client side. MD5 is deprecated in
// PostgreSQL; the gateway only uses it towards legacy origins.
import { createHash } from "node:crypto";

function md5Hex(...parts: Uint8Array[]): string {
  const hash = createHash("md5");
  for (const part of parts) hash.update(part);
  return hash.digest("hex");
}

function bytes(text: string | Uint8Array): Uint8Array {
  return typeof text === "string" ? Buffer.from(text, "utf8") : text;
}

/**
 * What PostgreSQL stores for an MD5 password (`pg_authid.rolpassword`): `"md5" + md5(password + user)`.
 * Strings are encoded as UTF-8 (the server encodes them in the client encoding; UTF-8 here).
 */
export function md5PasswordVerifier(user: string | Uint8Array, password: string | Uint8Array): string {
  return `md5${md5Hex(bytes(password), bytes(user))}`;
}

/** True when a stored password looks like an MD5 verifier: "md5" and 32 lowercase hex digits. */
export function isMd5Verifier(stored: string): boolean {
  return /^md5[0-9a-f]{32}$/.test(stored);
}

/**
 * The response to AuthenticationMD5Password (sent as the PasswordMessage cstring):
 * `"md5" + md5(md5(password + user) + salt)` in lowercase hex, where the inner digest is in hex too.
 */
export function md5PasswordHash(
  user: string | Uint8Array,
  password: string | Uint8Array,
  salt: Uint8Array,
): string {
  return md5PasswordHashFromVerifier(md5PasswordVerifier(user, password), salt);
}

/**
 * The same response computed from a stored MD5 verifier (`"md5" + md5(password + user)`) instead of the
 * password: with MD5 the verifier is password-equivalent, which is what lets a pooler authenticate from
 * `pg_authid` contents alone.
 */
export function md5PasswordHashFromVerifier(verifier: string, salt: Uint8Array): string {
  if (!isMd5Verifier(verifier)) {
    throw new RangeError('an MD5 verifier is "md5" followed by 32 lowercase hex digits');
  }
  if (salt.length !== 4) throw new RangeError(`the MD5 salt is 4 bytes, got ${salt.length}`);
  return `md5${md5Hex(Buffer.from(verifier.slice(3), "latin1"), salt)}`;
}
