// SASLprep (RFC 4013) exactly as PostgreSQL applies it to SCRAM passwords (src/common/saslprep.c), so a
// verifier computed here equals the one PostgreSQL stores, and a client proof computed here is accepted.
//
// PostgreSQL's behaviour, reproduced step by step:
//   0. A pure-ASCII password is used as is: no mapping, no normalisation, no prohibition check (so ASCII
//      control characters are fine).
//   1. Map: non-ASCII spaces (RFC 3454 C.1.2) become U+0020; "commonly mapped to nothing" characters (B.1)
//      are removed. If nothing is left, the password is "prohibited".
//   2. Normalise the mapped string with NFKC.
//   3. Prohibit: any prohibited-output (C.1.2, C.2.1, C.2.2, C.3–C.9) or unassigned-in-Unicode-3.2 (A.1)
//      code point makes the password "prohibited". Like PostgreSQL, this checks the mapped string *before*
//      normalisation.
//   4. Bidi (RFC 3454 §6): if any RandALCat character is present, there must be no LCat character and the
//      first and last characters must be RandALCat; otherwise "prohibited". Also on the pre-NFKC string.
// A prohibited password, or one whose bytes are not valid UTF-8, is not an error: PostgreSQL (server and
// libpq) then uses the raw bytes. {@link scramPasswordBytes} does the same.
//
// Differences that cannot matter in practice: NFKC comes from the JavaScript engine (ICU) rather than
// PostgreSQL's own tables; they can only differ for characters assigned after Unicode 3.2, and those are
// prohibited (A.1) before normalisation matters. Passwords containing U+0000 cannot exist in PostgreSQL.
import {
  L_CAT,
  MAPPED_TO_NOTHING,
  NON_ASCII_SPACE,
  PROHIBITED,
  RAND_AL_CAT,
  UNASSIGNED,
} from "./saslprep-tables.js";

function inTable(code: number, table: readonly number[]): boolean {
  // Binary search over flattened inclusive [first, last] pairs.
  let lo = 0;
  let hi = table.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const first = table[mid * 2] as number;
    const last = table[mid * 2 + 1] as number;
    if (code < first) hi = mid - 1;
    else if (code > last) lo = mid + 1;
    else return true;
  }
  return false;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * SASLprep as PostgreSQL implements it. Returns the prepared password, or `null` when SASLprep rejects it
 * (prohibited or unassigned characters, bidi violation, empty after mapping) — in that case PostgreSQL
 * uses the password's raw UTF-8 bytes. A string with unpaired surrogates (not encodable as UTF-8) also
 * gives `null`.
 */
export function saslprep(password: string): string | null {
  if (isAscii(password)) return password;
  if (!password.isWellFormed()) return null;

  // 1. Map.
  const mapped: number[] = [];
  for (const char of password) {
    const code = char.codePointAt(0) as number;
    if (inTable(code, NON_ASCII_SPACE)) mapped.push(0x20);
    else if (!inTable(code, MAPPED_TO_NOTHING)) mapped.push(code);
  }
  if (mapped.length === 0) return null;

  // 3. Prohibit (checked on the mapped, not yet normalised, code points — as PostgreSQL does).
  for (const code of mapped) {
    if (inTable(code, PROHIBITED) || inTable(code, UNASSIGNED)) return null;
  }

  // 4. Bidi.
  if (mapped.some((code) => inTable(code, RAND_AL_CAT))) {
    if (mapped.some((code) => inTable(code, L_CAT))) return null;
    const first = mapped[0] as number;
    const last = mapped[mapped.length - 1] as number;
    if (!inTable(first, RAND_AL_CAT) || !inTable(last, RAND_AL_CAT)) return null;
  }

  // 2. Normalise.
  let text = "";
  for (const code of mapped) text += String.fromCodePoint(code);
  return text.normalize("NFKC");
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The bytes PostgreSQL feeds to PBKDF2 for a SCRAM password: the SASLprep'd password in UTF-8, or the raw
 * bytes when SASLprep rejects it or (for a byte array) the bytes are not valid UTF-8.
 */
export function scramPasswordBytes(password: string | Uint8Array): Buffer {
  if (typeof password === "string") {
    const prepared = saslprep(password);
    return Buffer.from(prepared ?? password, "utf8");
  }
  let text: string;
  try {
    text = strictUtf8.decode(password);
  } catch {
    return Buffer.from(password);
  }
  const prepared = saslprep(text);
  return prepared === null ? Buffer.from(password) : Buffer.from(prepared, "utf8");
}
