import { createHash, randomBytes, randomInt } from "node:crypto";
import { randomPassword } from "@pgbind/local-postgres";

/** `pgb_` + 24 URL-safe random characters (144 bits). */
export function newConfigId(): string {
  return `pgb_${randomBytes(18).toString("base64url")}`;
}

/** `pgc_` + 24 URL-safe random characters. */
export function newCredentialId(): string {
  return `pgc_${randomBytes(18).toString("base64url")}`;
}

export function newTokenId(): string {
  return `pgt_${randomBytes(18).toString("base64url")}`;
}

const USER_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** `pgb_u_` + 20 lower-case letters and digits (~103 bits): safe unquoted in every client and URL. */
export function newCredentialUser(): string {
  let suffix = "";
  for (let i = 0; i < 20; i++) suffix += USER_ALPHABET[randomInt(USER_ALPHABET.length)];
  return `pgb_u_${suffix}`;
}

/** 32 random bytes, base64url (43 characters), never starting with `-`. */
export function newCredentialPassword(): string {
  return randomPassword(32);
}

/** An API token: `pgbt_` + 32 random bytes, base64url. */
export function newApiToken(): string {
  return `pgbt_${randomBytes(32).toString("base64url")}`;
}

export function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

export const CONFIG_ID = /^pgb_[A-Za-z0-9_-]{24}$/;
export const CREDENTIAL_ID = /^pgc_[A-Za-z0-9_-]{24}$/;
