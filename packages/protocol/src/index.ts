// @pgbind/protocol: the PostgreSQL wire protocol (v3) without I/O. Framing, cursor reader and writer,
// message codes, and builders/parsers for the messages a gateway sends or inspects.

// Authentication (SCRAM-SHA-256, MD5) lives in src/auth.
export * from "./auth/index.js";
export * from "./backend.js";
export {
  AuthenticationCode,
  type AuthenticationCodeValue,
  BackendMessage,
  type BackendMessageCode,
  backendMessageName,
  CANCEL_REQUEST_CODE,
  ErrorField,
  type ErrorFieldName,
  errorFieldName,
  FrontendMessage,
  type FrontendMessageCode,
  frontendMessageName,
  GSSENC_REQUEST_CODE,
  PROTOCOL_VERSION_3,
  SSL_REQUEST_CODE,
  TransactionStatus,
  type TransactionStatusCode,
} from "./codes.js";
export { isProtocolError, ProtocolError, type ProtocolErrorCode } from "./errors.js";
export {
  DEFAULT_MAX_MESSAGE_LENGTH,
  DEFAULT_MAX_STARTUP_LENGTH,
  type Frame,
  type FrameHandler,
  MessageFramer,
  type MessageFramerOptions,
} from "./framer.js";
export * from "./frontend.js";
export { Reader, readFrame } from "./reader.js";
export { FrameScanner, type FrameScannerOptions } from "./scanner.js";
export { Writer } from "./writer.js";
