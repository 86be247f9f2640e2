// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: no channel binding (gs2 header "n,," or
// "y,,"), no authorization identity, and the user name in client-first-message ignored (PostgreSQL
// authenticates the user from the StartupMessage; clients send "n=" or "n=*").
//
// Everything here is pure computation: no sockets, no timers. The gateway frames the bytes returned here
// into AuthenticationSASL / AuthenticationSASLContinue / AuthenticationSASLFinal (server side) and
// SASLInitialResponse / SASLResponse (client side).
import crypto, {
  createHash,
  createHmac,
  pbkdf2,
  pbkdf2Sync,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import type { RandomPool } from "./random-pool.js";
import { scramPasswordBytes } from "./saslprep.js";

/** The only SASL mechanism supported (no channel binding, so no SCRAM-SHA-256-PLUS). */
export const SCRAM_SHA_256 = "SCRAM-SHA-256";
/** PostgreSQL's default `scram_iterations`. */
export const SCRAM_DEFAULT_ITERATIONS = 4096;
/** PostgreSQL's salt length for new verifiers. */
export const SCRAM_DEFAULT_SALT_BYTES = 16;
/** Random bytes in a nonce, as PostgreSQL and libpq use (base64-encoded to 24 characters). */
export const SCRAM_DEFAULT_NONCE_BYTES = 18;
/** Default upper bound on the iteration count a client accepts from a server. */
export const SCRAM_MAX_ITERATIONS = 10_000_000;

const KEY_BYTES = 32;
const INT32_MAX = 2 ** 31 - 1;
const VERIFIER_PREFIX = `${SCRAM_SHA_256}$`;
const VERIFIER_FORMAT = `"${VERIFIER_PREFIX}<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>"`;

export type ScramErrorCode =
  /** A stored verifier string is not in PostgreSQL's SCRAM-SHA-256 format. */
  | "INVALID_VERIFIER"
  /** Bad arguments or options (iterations, salt, nonce, cache size). */
  | "INVALID_OPTIONS"
  /** A method was called out of order (e.g. verifyServerFinal before handleServerFirst). */
  | "INVALID_STATE"
  /** The server does not offer SCRAM-SHA-256, or requires an extension we do not implement. */
  | "UNSUPPORTED"
  /** A server message does not follow the SCRAM grammar. */
  | "MALFORMED_MESSAGE"
  /** The server nonce does not extend the client nonce. */
  | "NONCE_MISMATCH"
  /** The server's iteration count is outside 1…maxIterations. */
  | "ITERATIONS_OUT_OF_RANGE"
  /** The server sent "e=…" in server-final-message. */
  | "SERVER_ERROR"
  /** The server signature is wrong: the server does not know the password (or a MITM). */
  | "SERVER_SIGNATURE_MISMATCH";

/** Thrown by the client side and by verifier parsing/creation. The server side never throws (see {@link ScramAuthFailure}). */
export class ScramError extends Error {
  readonly code: ScramErrorCode;
  constructor(code: ScramErrorCode, message: string) {
    super(message);
    this.name = "ScramError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Primitives

/** How a digest is returned: a string, one character per byte (latin1), or base64. */
type DigestEncoding = "latin1" | "base64";

/**
 * One-shot SHA-256 (`crypto.hash`, Node ≥ 20.12), which keeps the fetched algorithm: `createHash` and
 * `createHmac` fetch it from OpenSSL 3 on every call, which showed as ~12% of the gateway's CPU when every
 * transaction is a new connection (pgbench -C). Asked for a string, never a Buffer: Node copies a Buffer
 * digest into a new, unpooled ArrayBuffer, which made each call ~3.5x slower (2.1 vs 0.6 µs). Absent on
 * older runtimes, where the classic API serves.
 */
const oneShot = (
  crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: DigestEncoding) => string }
).hash;

const HMAC_BLOCK = 64;

/** HMAC-SHA-256 of `message` under `key`, as a latin1 or base64 string. */
function hmacDigest(key: Uint8Array, message: Uint8Array, encoding: DigestEncoding): string {
  if (oneShot === undefined || key.length > HMAC_BLOCK) {
    // ("binary" is Node's older name for latin1.)
    return createHmac("sha256", key)
      .update(message)
      .digest(encoding === "latin1" ? "binary" : encoding);
  }
  // RFC 2104: H((K ^ opad) || H((K ^ ipad) || message)), K zero-padded to the block size.
  const inner = Buffer.allocUnsafe(HMAC_BLOCK + message.length);
  const outer = Buffer.allocUnsafe(HMAC_BLOCK + KEY_BYTES);
  for (let i = 0; i < HMAC_BLOCK; i++) {
    const k = i < key.length ? (key[i] as number) : 0;
    inner[i] = k ^ 0x36;
    outer[i] = k ^ 0x5c;
  }
  inner.set(message, HMAC_BLOCK);
  outer.write(oneShot("sha256", inner, "latin1"), HMAC_BLOCK, "latin1");
  return oneShot("sha256", outer, encoding);
}

function hmac(key: Uint8Array, data: string | Uint8Array): Buffer {
  const message = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  return Buffer.from(hmacDigest(key, message, "latin1"), "latin1");
}

function sha256(data: Uint8Array): Buffer {
  return oneShot === undefined
    ? createHash("sha256").update(data).digest()
    : Buffer.from(oneShot("sha256", data, "latin1"), "latin1");
}

function xor(a: Uint8Array, b: Uint8Array): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) ^ (b[i] as number);
  return out;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict, canonical base64 (RFC 4648 alphabet, padded, unused bits zero), or null. Canonical matters:
 * otherwise several spellings decode to the same proof, and a mutated message could still verify.
 */
function decodeBase64(text: string): Buffer | null {
  if (!BASE64.test(text)) return null;
  const bytes = Buffer.from(text, "base64");
  return bytes.toString("base64") === text ? bytes : null;
}

/** A nonce is 1*printable, printable = %x21-2B / %x2D-7E (no comma). */
function isValidNonce(nonce: string): boolean {
  if (nonce.length === 0) return false;
  for (let i = 0; i < nonce.length; i++) {
    const c = nonce.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x2c) return false;
  }
  return true;
}

/** An extension attribute: ALPHA "=" 1*value-char (value-char excludes "," and NUL, already split/checked). */
const EXTENSION = /^[A-Za-z]=.+$/s;

/** saslname: any chars but "," and "=", which appear only as "=2C" and "=3D". */
const SASLNAME = /^(?:[^=,]|=2C|=3D)*$/s;

function encodeSaslName(name: string): string {
  // Messages are handled as latin1 strings (one char per byte), so encode the UTF-8 bytes.
  return Buffer.from(name, "utf8").toString("latin1").replaceAll("=", "=3D").replaceAll(",", "=2C");
}

/** Bytes as a string with one char per byte, so every byte round-trips and AuthMessage stays byte-exact. */
function latin1(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("latin1");
}

function newNonce(bytes: number, random?: RandomPool): string {
  return (random?.bytes(bytes) ?? randomBytes(bytes)).toString("base64");
}

function checkNonceOptions(options: { readonly nonce?: string; readonly nonceBytes?: number }): void {
  if (options.nonce !== undefined && !isValidNonce(options.nonce)) {
    throw new ScramError(
      "INVALID_OPTIONS",
      "nonce must be 1 or more printable ASCII characters other than ','",
    );
  }
  const bytes = options.nonceBytes;
  if (bytes !== undefined && (!Number.isInteger(bytes) || bytes < 1 || bytes > 1024)) {
    throw new ScramError("INVALID_OPTIONS", `nonceBytes must be an integer in 1…1024, got ${bytes}`);
  }
}

function checkIterations(iterations: number, max: number, what: string): void {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > max) {
    throw new ScramError("INVALID_OPTIONS", `${what} must be an integer in 1…${max}, got ${iterations}`);
  }
}

function deriveSaltedPassword(password: Uint8Array, salt: Uint8Array, iterations: number): Buffer {
  // Hi(password, salt, i) of RFC 5802 is PBKDF2 with HMAC-SHA-256 and a 32-byte output.
  return pbkdf2Sync(password, salt, iterations, KEY_BYTES, "sha256");
}

function deriveSaltedPasswordAsync(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, iterations, KEY_BYTES, "sha256", (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

function clientKeyOf(saltedPassword: Uint8Array): Buffer {
  return hmac(saltedPassword, "Client Key");
}

function serverKeyOf(saltedPassword: Uint8Array): Buffer {
  return hmac(saltedPassword, "Server Key");
}

// ---------------------------------------------------------------------------------------------------------
// Verifiers

/** A parsed PostgreSQL SCRAM-SHA-256 verifier (what `pg_authid.rolpassword` holds). */
export interface ScramVerifier {
  readonly iterations: number;
  readonly salt: Buffer;
  /** H(ClientKey): checks client proofs. */
  readonly storedKey: Buffer;
  /** HMAC(SaltedPassword, "Server Key"): signs server-final-message. */
  readonly serverKey: Buffer;
}

export interface CreateScramVerifierOptions {
  /** Default 4096, like PostgreSQL's `scram_iterations`. */
  readonly iterations?: number;
  /** Default 16 random bytes. */
  readonly salt?: Uint8Array;
}

/**
 * The verifier PostgreSQL would store for this password:
 * `SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>`. The password goes
 * through PostgreSQL's SASLprep (see `saslprep.ts`); a byte array that is not UTF-8 is used raw.
 */
export function createScramVerifier(
  password: string | Uint8Array,
  options: CreateScramVerifierOptions = {},
): string {
  const iterations = options.iterations ?? SCRAM_DEFAULT_ITERATIONS;
  checkIterations(iterations, INT32_MAX, "iterations");
  const salt = options.salt === undefined ? randomBytes(SCRAM_DEFAULT_SALT_BYTES) : Buffer.from(options.salt);
  if (salt.length === 0) throw new ScramError("INVALID_OPTIONS", "salt must not be empty");
  const saltedPassword = deriveSaltedPassword(scramPasswordBytes(password), salt, iterations);
  return formatScramVerifier({
    iterations,
    salt,
    storedKey: sha256(clientKeyOf(saltedPassword)),
    serverKey: serverKeyOf(saltedPassword),
  });
}

/** The PostgreSQL text form of a verifier. */
export function formatScramVerifier(verifier: ScramVerifier): string {
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
  return `${VERIFIER_PREFIX}${verifier.iterations}:${b64(verifier.salt)}$${b64(verifier.storedKey)}:${b64(verifier.serverKey)}`;
}

/** True when the stored password looks like a SCRAM-SHA-256 verifier (as opposed to MD5 or plaintext). */
export function isScramVerifier(stored: string): boolean {
  return stored.startsWith(VERIFIER_PREFIX);
}

/** Parses a PostgreSQL SCRAM-SHA-256 verifier; throws {@link ScramError} `INVALID_VERIFIER` saying what is wrong. */
export function parseScramVerifier(text: string): ScramVerifier {
  const invalid = (what: string) =>
    new ScramError("INVALID_VERIFIER", `invalid SCRAM-SHA-256 verifier: ${what}`);
  if (typeof text !== "string") throw invalid(`expected a string, got ${typeof text}`);
  if (!text.startsWith(VERIFIER_PREFIX)) {
    throw invalid(`it does not start with "${VERIFIER_PREFIX}" (expected ${VERIFIER_FORMAT})`);
  }
  const sections = text.slice(VERIFIER_PREFIX.length).split("$");
  const head = sections[0]?.split(":") ?? [];
  const keys = sections[1]?.split(":") ?? [];
  if (sections.length !== 2 || head.length !== 2 || keys.length !== 2) {
    throw invalid(`expected ${VERIFIER_FORMAT}`);
  }
  const [iterationText = "", saltText = ""] = head;
  const [storedText = "", serverText = ""] = keys;
  if (!/^[1-9][0-9]{0,9}$/.test(iterationText) || Number(iterationText) > INT32_MAX) {
    throw invalid(
      `the iteration count ${JSON.stringify(iterationText.slice(0, 20))} is not an integer in 1…${INT32_MAX}`,
    );
  }
  const salt = decodeBase64(saltText);
  if (salt === null || salt.length === 0) throw invalid("the salt is not non-empty base64");
  const storedKey = decodeBase64(storedText);
  if (storedKey === null || storedKey.length !== KEY_BYTES)
    throw invalid("the StoredKey is not 32 bytes of base64");
  const serverKey = decodeBase64(serverText);
  if (serverKey === null || serverKey.length !== KEY_BYTES)
    throw invalid("the ServerKey is not 32 bytes of base64");
  return { iterations: Number(iterationText), salt, storedKey, serverKey };
}

/**
 * A verifier no password matches, for running a full exchange with a user that does not exist (so the
 * client cannot tell, as PostgreSQL's "mock authentication" does). Deterministic in (user, secret): the
 * same unknown user always sees the same salt. `secret` is a per-gateway random value (≥ 16 bytes).
 */
export function createMockScramVerifier(
  user: string,
  secret: Uint8Array,
  options: { readonly iterations?: number } = {},
): string {
  if (secret.length < 16)
    throw new ScramError("INVALID_OPTIONS", "the mock secret must be at least 16 bytes");
  const iterations = options.iterations ?? SCRAM_DEFAULT_ITERATIONS;
  checkIterations(iterations, INT32_MAX, "iterations");
  const derive = (label: string) =>
    createHmac("sha256", secret).update(`${label}\0`).update(user, "utf8").digest();
  return formatScramVerifier({
    iterations,
    salt: derive("salt").subarray(0, SCRAM_DEFAULT_SALT_BYTES),
    storedKey: derive("stored-key"),
    serverKey: derive("server-key"),
  });
}

// ---------------------------------------------------------------------------------------------------------
// Server side: the gateway authenticating a client

/** Why a server-side exchange failed: for logs only, never for the client. */
export type ScramFailureReason =
  | "unsupported-mechanism"
  | "channel-binding-unsupported"
  | "channel-binding-mismatch"
  | "unsupported-feature"
  | "malformed-message"
  | "nonce-mismatch"
  | "invalid-proof"
  | "unexpected-message";

/**
 * A failed exchange. Send it as ErrorResponse (severity, sqlstate, message) and close; every failure reads
 * the same to the client, `reason` and `detail` are for the gateway's logs.
 */
export interface ScramAuthFailure {
  readonly ok: false;
  readonly severity: "FATAL";
  /** invalid_password */
  readonly sqlstate: "28P01";
  /** `password authentication failed for user "<user>"`, as PostgreSQL says. */
  readonly message: string;
  readonly reason: ScramFailureReason;
  readonly detail: string;
}

/** A message to send: server-first-message (AuthenticationSASLContinue) or server-final-message (AuthenticationSASLFinal). */
export interface ScramServerMessage {
  readonly ok: true;
  readonly data: Buffer;
}

export type ScramServerResult = ScramServerMessage | ScramAuthFailure;

export interface ScramServerOptions {
  /** The StartupMessage user, for the failure message. */
  readonly user?: string;
  /** Random bytes in the server nonce, default 18. */
  readonly nonceBytes?: number;
  /** Fixed server nonce part (tests only: a nonce must never repeat). */
  readonly nonce?: string;
  /** Where the server nonce's random bytes come from; without it, one `randomBytes` call per session. */
  readonly random?: RandomPool;
}

/** The base64 gs2 headers a client without channel binding echoes in client-final-message ("c="). */
const GS2_HEADER_N = Buffer.from("n,,", "latin1").toString("base64");
const GS2_HEADER_Y = Buffer.from("y,,", "latin1").toString("base64");

export type ScramServerState = "client-first" | "client-final" | "succeeded" | "failed";

/**
 * One SCRAM-SHA-256 exchange, server side, against a stored verifier. Needs no key derivation: StoredKey
 * and ServerKey come precomputed in the verifier. Input is never trusted: every problem, including
 * garbage bytes and calls out of order, comes back as a {@link ScramAuthFailure}, never as an exception.
 *
 * ```ts
 * const scram = new ScramServerSession(rolpassword, { user });
 * send(buildAuthenticationSASL(scram.start()));
 * const { mechanism, data } = parseSASLInitialResponse(frame);
 * const first = scram.handleClientFirst(mechanism, data);
 * if (!first.ok) return fail(first); // ErrorResponse: first.severity, first.sqlstate, first.message
 * send(buildAuthenticationSASLContinue(first.data));
 * const final = scram.handleClientFinal(parseSASLResponse(nextFrame));
 * if (!final.ok) return fail(final);
 * send(buildAuthenticationSASLFinal(final.data), AuthenticationOk);
 * ```
 */
export class ScramServerSession {
  readonly #verifier: ScramVerifier;
  readonly #user: string | undefined;
  readonly #nonceBytes: number;
  readonly #fixedNonce: string | undefined;
  readonly #random: RandomPool | undefined;
  #state: ScramServerState = "client-first";
  /** The client's channel-binding attribute value: base64 of its gs2 header ("n,," or "y,,"). */
  #channelBinding = "";
  #clientFirstBare = "";
  #serverFirst = "";
  #nonce = "";

  /** Throws {@link ScramError} for an unparsable verifier or bad options (configuration errors, not client input). */
  constructor(verifier: string | ScramVerifier, options: ScramServerOptions = {}) {
    this.#verifier = typeof verifier === "string" ? parseScramVerifier(verifier) : verifier;
    checkNonceOptions(options);
    this.#user = options.user;
    this.#nonceBytes = options.nonceBytes ?? SCRAM_DEFAULT_NONCE_BYTES;
    this.#fixedNonce = options.nonce;
    this.#random = options.random;
  }

  get state(): ScramServerState {
    return this.#state;
  }

  /** The mechanisms for AuthenticationSASL. */
  start(): readonly string[] {
    return [SCRAM_SHA_256];
  }

  /**
   * Handles SASLInitialResponse: returns server-first-message for AuthenticationSASLContinue. `data` is
   * null when the client sent none (length -1), which fails.
   */
  handleClientFirst(mechanism: string, data: Uint8Array | null): ScramServerResult {
    if (this.#state !== "client-first") {
      return this.#fail("unexpected-message", `client-first-message received in state ${this.#state}`);
    }
    try {
      if (mechanism !== SCRAM_SHA_256) {
        const shown = JSON.stringify(String(mechanism).slice(0, 64));
        return mechanism === `${SCRAM_SHA_256}-PLUS`
          ? this.#fail("channel-binding-unsupported", `the client selected ${shown}, which was not offered`)
          : this.#fail("unsupported-mechanism", `the client selected the unsupported mechanism ${shown}`);
      }
      if (data === null)
        return this.#fail("malformed-message", "SASLInitialResponse carries no client-first-message");
      return this.#clientFirst(latin1(data));
    } catch (error) {
      return this.#fail("malformed-message", `unparsable client-first-message: ${String(error)}`);
    }
  }

  /** Handles SASLResponse: checks the proof, returns server-final-message for AuthenticationSASLFinal. */
  handleClientFinal(data: Uint8Array): ScramServerResult {
    if (this.#state !== "client-final") {
      return this.#fail("unexpected-message", `client-final-message received in state ${this.#state}`);
    }
    try {
      return this.#clientFinal(latin1(data));
    } catch (error) {
      return this.#fail("malformed-message", `unparsable client-final-message: ${String(error)}`);
    }
  }

  #clientFirst(text: string): ScramServerResult {
    if (text.includes("\0"))
      return this.#fail("malformed-message", "client-first-message contains a NUL byte");
    // gs2-header = gs2-cbind-flag "," [ authzid ] "," ; then client-first-message-bare.
    const parts = text.split(",");
    const [flag = "", authzid = "", user = "", nonceAttr = "", ...extensions] = parts;
    if (flag.startsWith("p=")) {
      return this.#fail(
        "channel-binding-unsupported",
        "the client requires channel binding, which is not offered",
      );
    }
    if (flag !== "n" && flag !== "y") {
      return this.#fail(
        "malformed-message",
        "client-first-message: bad gs2-cbind-flag (expected n, y or p=)",
      );
    }
    if (parts.length < 4) return this.#fail("malformed-message", "client-first-message: too few attributes");
    if (authzid !== "") {
      return authzid.startsWith("a=")
        ? this.#fail(
            "unsupported-feature",
            "the client sent an authorization identity, which is not supported",
          )
        : this.#fail("malformed-message", "client-first-message: bad authzid");
    }
    if (user.startsWith("m=")) {
      return this.#fail("unsupported-feature", "the client requires an unsupported SCRAM extension (m=)");
    }
    if (!user.startsWith("n=") || !SASLNAME.test(user.slice(2))) {
      return this.#fail("malformed-message", "client-first-message: bad username attribute");
    }
    const clientNonce = nonceAttr.slice(2);
    if (!nonceAttr.startsWith("r=") || !isValidNonce(clientNonce)) {
      return this.#fail("malformed-message", "client-first-message: bad nonce attribute");
    }
    if (!extensions.every((attr) => EXTENSION.test(attr))) {
      return this.#fail("malformed-message", "client-first-message: bad extension attribute");
    }
    this.#channelBinding = flag === "n" ? GS2_HEADER_N : GS2_HEADER_Y;
    this.#clientFirstBare = parts.slice(2).join(",");
    this.#nonce = clientNonce + (this.#fixedNonce ?? newNonce(this.#nonceBytes, this.#random));
    const v = this.#verifier;
    this.#serverFirst = `r=${this.#nonce},s=${v.salt.toString("base64")},i=${v.iterations}`;
    this.#state = "client-final";
    return { ok: true, data: Buffer.from(this.#serverFirst, "latin1") };
  }

  #clientFinal(text: string): ScramServerResult {
    if (text.includes("\0"))
      return this.#fail("malformed-message", "client-final-message contains a NUL byte");
    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    const parts = text.split(",");
    if (parts.length < 3) return this.#fail("malformed-message", "client-final-message: too few attributes");
    const binding = parts[0] as string;
    const nonceAttr = parts[1] as string;
    const proofAttr = parts[parts.length - 1] as string;
    const extensions = parts.slice(2, -1);
    if (!binding.startsWith("c=")) {
      return this.#fail("malformed-message", "client-final-message: missing channel-binding attribute");
    }
    if (binding.slice(2) !== this.#channelBinding) {
      return this.#fail(
        "channel-binding-mismatch",
        "client-final-message: channel-binding data does not match the gs2 header",
      );
    }
    if (!nonceAttr.startsWith("r="))
      return this.#fail("malformed-message", "client-final-message: missing nonce");
    if (nonceAttr.slice(2) !== this.#nonce) {
      return this.#fail(
        "nonce-mismatch",
        "client-final-message: the nonce differs from the one in server-first-message",
      );
    }
    if (!extensions.every((attr) => EXTENSION.test(attr))) {
      return this.#fail("malformed-message", "client-final-message: bad extension attribute");
    }
    const proof = proofAttr.startsWith("p=") ? decodeBase64(proofAttr.slice(2)) : null;
    if (proof === null || proof.length !== KEY_BYTES) {
      return this.#fail("malformed-message", "client-final-message: the proof is not 32 bytes of base64");
    }
    const withoutProof = parts.slice(0, -1).join(",");
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const { storedKey, serverKey } = this.#verifier;
    const message = Buffer.from(authMessage, "latin1");
    const clientKey = xor(proof, hmac(storedKey, message));
    if (!timingSafeEqual(sha256(clientKey), storedKey)) {
      return this.#fail("invalid-proof", "the client proof is wrong (wrong password)");
    }
    this.#state = "succeeded";
    return { ok: true, data: Buffer.from(`v=${hmacDigest(serverKey, message, "base64")}`, "latin1") };
  }

  #fail(reason: ScramFailureReason, detail: string): ScramAuthFailure {
    this.#state = "failed";
    return {
      ok: false,
      severity: "FATAL",
      sqlstate: "28P01",
      message:
        this.#user === undefined
          ? "password authentication failed"
          : `password authentication failed for user "${this.#user}"`,
      reason,
      detail,
    };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Client side: the gateway authenticating to the origin

/**
 * A bounded cache of SaltedPassword = PBKDF2(password, salt, iterations), the only costly step of the
 * client side (≈1–2 ms at 4096 iterations, proportionally more above). A pool reconnecting to the same
 * origin derives the same value every time; share one cache per pool (or per gateway). Least recently
 * used entries are evicted first. Keys hold a SHA-256 of the prepared password, not the password.
 */
export class ScramKeyCache {
  readonly maxEntries: number;
  readonly #entries = new Map<string, Buffer>();
  readonly #pending = new Map<string, Promise<Buffer>>();

  constructor(maxEntries = 16) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new ScramError("INVALID_OPTIONS", `maxEntries must be a positive integer, got ${maxEntries}`);
    }
    this.maxEntries = maxEntries;
  }

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
  }

  /** SaltedPassword for already-prepared password bytes (see `scramPasswordBytes`), from the cache or derived. */
  saltedPassword(password: Uint8Array, salt: Uint8Array, iterations: number): Buffer {
    const key = cacheKey(password, salt, iterations);
    return this.#get(key) ?? this.#set(key, deriveSaltedPassword(password, salt, iterations));
  }

  /** Like {@link saltedPassword}, deriving on the libuv thread pool; concurrent misses for one key derive once. */
  async saltedPasswordAsync(password: Uint8Array, salt: Uint8Array, iterations: number): Promise<Buffer> {
    const key = cacheKey(password, salt, iterations);
    const hit = this.#get(key);
    if (hit !== undefined) return hit;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = deriveSaltedPasswordAsync(password, salt, iterations).then(
        (value) => {
          this.#pending.delete(key);
          return this.#set(key, value);
        },
        (error: unknown) => {
          this.#pending.delete(key);
          throw error;
        },
      );
      this.#pending.set(key, pending);
    }
    return pending;
  }

  #get(key: string): Buffer | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  #set(key: string, value: Buffer): Buffer {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    while (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    return value;
  }
}

function cacheKey(password: Uint8Array, salt: Uint8Array, iterations: number): string {
  return `${sha256(password).toString("base64")}:${Buffer.from(salt).toString("base64")}:${iterations}`;
}

export interface ScramClientOptions {
  /** Cache of SaltedPassword values, shared by the sessions of a pool. */
  readonly cache?: ScramKeyCache;
  /** Largest iteration count accepted from the server, default 10,000,000 (a hostile server could otherwise burn CPU). */
  readonly maxIterations?: number;
  /** User name sent in client-first-message; PostgreSQL ignores it. Default "" (as libpq sends). */
  readonly username?: string;
  /** Random bytes in the client nonce, default 18. */
  readonly nonceBytes?: number;
  /** Fixed client nonce (tests only: a nonce must never repeat). */
  readonly nonce?: string;
}

export type ScramClientState =
  | "initial"
  | "server-first"
  | "deriving"
  | "server-final"
  | "succeeded"
  | "failed";

interface ServerFirst {
  readonly text: string;
  readonly nonce: string;
  readonly salt: Buffer;
  readonly iterations: number;
}

/**
 * One SCRAM-SHA-256 exchange, client side. Throws {@link ScramError} on any problem; the connection must
 * then be closed.
 *
 * ```ts
 * const scram = new ScramClientSession(password, { cache });
 * const { mechanism, data } = scram.clientFirst(offeredMechanisms);          // from AuthenticationSASL
 * send(buildSASLInitialResponse(mechanism, data));
 * send(buildSASLResponse(await scram.handleServerFirstAsync(continueData))); // AuthenticationSASLContinue
 * scram.verifyServerFinal(finalData);                                        // AuthenticationSASLFinal
 * // then expect AuthenticationOk
 * ```
 */
export class ScramClientSession {
  readonly #password: Buffer;
  readonly #cache: ScramKeyCache | undefined;
  readonly #maxIterations: number;
  readonly #nonce: string;
  readonly #clientFirstBare: string;
  #state: ScramClientState = "initial";
  #expectedServerSignature: Buffer | undefined;

  constructor(password: string | Uint8Array, options: ScramClientOptions = {}) {
    checkNonceOptions(options);
    const maxIterations = options.maxIterations ?? SCRAM_MAX_ITERATIONS;
    checkIterations(maxIterations, INT32_MAX, "maxIterations");
    this.#password = scramPasswordBytes(password);
    this.#cache = options.cache;
    this.#maxIterations = maxIterations;
    this.#nonce = options.nonce ?? newNonce(options.nonceBytes ?? SCRAM_DEFAULT_NONCE_BYTES);
    this.#clientFirstBare = `n=${encodeSaslName(options.username ?? "")},r=${this.#nonce}`;
  }

  get state(): ScramClientState {
    return this.#state;
  }

  /**
   * client-first-message for SASLInitialResponse. Pass the mechanisms of AuthenticationSASL to check that
   * SCRAM-SHA-256 is among them (throws `UNSUPPORTED` otherwise).
   */
  clientFirst(offered?: readonly string[]): {
    readonly mechanism: typeof SCRAM_SHA_256;
    readonly data: Buffer;
  } {
    this.#expect("initial", "clientFirst");
    if (offered !== undefined && !offered.includes(SCRAM_SHA_256)) {
      this.#state = "failed";
      const list = offered.map((m) => JSON.stringify(m.slice(0, 64))).join(", ") || "none";
      throw new ScramError("UNSUPPORTED", `the server does not offer ${SCRAM_SHA_256} (it offers ${list})`);
    }
    this.#state = "server-first";
    return { mechanism: SCRAM_SHA_256, data: Buffer.from(`n,,${this.#clientFirstBare}`, "latin1") };
  }

  /**
   * Handles server-first-message (AuthenticationSASLContinue); returns client-final-message for
   * SASLResponse. Derives the key synchronously unless cached: prefer {@link handleServerFirstAsync} in a
   * server, where a high iteration count would block the event loop.
   */
  handleServerFirst(data: Uint8Array): Buffer {
    this.#expect("server-first", "handleServerFirst");
    const first = this.#parseServerFirst(data);
    let saltedPassword: Buffer;
    try {
      saltedPassword =
        this.#cache?.saltedPassword(this.#password, first.salt, first.iterations) ??
        deriveSaltedPassword(this.#password, first.salt, first.iterations);
    } catch (error) {
      this.#state = "failed";
      throw error;
    }
    return this.#clientFinal(first, saltedPassword);
  }

  /** {@link handleServerFirst} with PBKDF2 on the libuv thread pool. */
  async handleServerFirstAsync(data: Uint8Array): Promise<Buffer> {
    this.#expect("server-first", "handleServerFirstAsync");
    const first = this.#parseServerFirst(data);
    let saltedPassword: Buffer;
    try {
      saltedPassword = await (this.#cache?.saltedPasswordAsync(
        this.#password,
        first.salt,
        first.iterations,
      ) ?? deriveSaltedPasswordAsync(this.#password, first.salt, first.iterations));
    } catch (error) {
      this.#state = "failed";
      throw error;
    }
    return this.#clientFinal(first, saltedPassword);
  }

  /** Checks server-final-message (AuthenticationSASLFinal). Throws unless the server proved it knows the password. */
  verifyServerFinal(data: Uint8Array): void {
    this.#expect("server-final", "verifyServerFinal");
    this.#state = "failed";
    const text = latin1(data);
    const [first = "", ...extensions] = text.split(",");
    if (first.startsWith("e=")) {
      const value = first
        .slice(2)
        .replace(/[^\x20-\x7e]/g, "?")
        .slice(0, 200);
      throw new ScramError("SERVER_ERROR", `the server rejected the SCRAM exchange: ${value}`);
    }
    const signature = first.startsWith("v=") ? decodeBase64(first.slice(2)) : null;
    if (signature === null || text.includes("\0") || !extensions.every((attr) => EXTENSION.test(attr))) {
      throw new ScramError("MALFORMED_MESSAGE", "malformed server-final-message");
    }
    const expected = this.#expectedServerSignature as Buffer;
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ScramError(
        "SERVER_SIGNATURE_MISMATCH",
        "the server's SCRAM signature is wrong: the server does not know the password",
      );
    }
    this.#state = "succeeded";
  }

  #expect(state: ScramClientState, method: string): void {
    if (this.#state !== state) {
      throw new ScramError("INVALID_STATE", `${method}() called in state ${this.#state} (expected ${state})`);
    }
  }

  #parseServerFirst(data: Uint8Array): ServerFirst {
    this.#state = "failed";
    const malformed = (what: string) =>
      new ScramError("MALFORMED_MESSAGE", `malformed server-first-message: ${what}`);
    const text = latin1(data);
    if (text.includes("\0")) throw malformed("it contains a NUL byte");
    const [nonceAttr = "", saltAttr = "", iterationsAttr = "", ...extensions] = text.split(",");
    if (nonceAttr.startsWith("m=")) {
      throw new ScramError("UNSUPPORTED", "the server requires an unsupported SCRAM extension (m=)");
    }
    const nonce = nonceAttr.slice(2);
    if (!nonceAttr.startsWith("r=") || !isValidNonce(nonce)) throw malformed("bad nonce attribute");
    if (!nonce.startsWith(this.#nonce) || nonce.length === this.#nonce.length) {
      throw new ScramError("NONCE_MISMATCH", "the server nonce does not extend the client nonce");
    }
    const salt = saltAttr.startsWith("s=") ? decodeBase64(saltAttr.slice(2)) : null;
    if (salt === null || salt.length === 0) throw malformed("bad salt attribute");
    const iterationText = iterationsAttr.slice(2);
    if (!iterationsAttr.startsWith("i=") || !/^[0-9]{1,12}$/.test(iterationText)) {
      throw malformed("bad iteration-count attribute");
    }
    const iterations = Number(iterationText);
    if (iterations < 1 || iterations > this.#maxIterations) {
      throw new ScramError(
        "ITERATIONS_OUT_OF_RANGE",
        `the server asks for ${iterations} PBKDF2 iterations; the accepted range is 1…${this.#maxIterations}`,
      );
    }
    if (!extensions.every((attr) => EXTENSION.test(attr))) throw malformed("bad extension attribute");
    this.#state = "deriving";
    return { text, nonce, salt, iterations };
  }

  #clientFinal(first: ServerFirst, saltedPassword: Buffer): Buffer {
    const withoutProof = `c=${Buffer.from("n,,").toString("base64")},r=${first.nonce}`;
    const authMessage = `${this.#clientFirstBare},${first.text},${withoutProof}`;
    const clientKey = clientKeyOf(saltedPassword);
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.#expectedServerSignature = hmac(serverKeyOf(saltedPassword), authMessage);
    this.#state = "server-final";
    return Buffer.from(`${withoutProof},p=${proof.toString("base64")}`, "latin1");
  }
}
