// Authentication: SCRAM-SHA-256 (both sides) and MD5 (client side), pure functions and state machines.
export {
  isMd5Verifier,
  md5PasswordHash,
  md5PasswordHashFromVerifier,
  md5PasswordVerifier,
} from "./md5.js";
export { RandomPool } from "./random-pool.js";
export { saslprep, scramPasswordBytes } from "./saslprep.js";
export {
  type CreateScramVerifierOptions,
  createMockScramVerifier,
  createScramVerifier,
  formatScramVerifier,
  isScramVerifier,
  parseScramVerifier,
  SCRAM_DEFAULT_ITERATIONS,
  SCRAM_DEFAULT_NONCE_BYTES,
  SCRAM_DEFAULT_SALT_BYTES,
  SCRAM_MAX_ITERATIONS,
  SCRAM_SHA_256,
  type ScramAuthFailure,
  type ScramClientOptions,
  ScramClientSession,
  type ScramClientState,
  ScramError,
  type ScramErrorCode,
  type ScramFailureReason,
  ScramKeyCache,
  type ScramServerMessage,
  type ScramServerOptions,
  type ScramServerResult,
  ScramServerSession,
  type ScramServerState,
  type ScramVerifier,
} from "./scram.js";
