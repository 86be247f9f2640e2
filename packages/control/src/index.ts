export { type ApiOptions, type ControlLog, createApi, VERSION } from "./api.js";
export { parseConnectionString } from "./connection-string.js";
export { localStoreUrl } from "./embedded-store.js";
export { ControlError, type ControlErrorCode, type Problem } from "./errors.js";
export { type GatewayAddress, parseGatewayUrl } from "./gateway-url.js";
export { MIGRATIONS, type Migration, migrate } from "./migrations.js";
export { openApiDocument } from "./openapi.js";
export { type OriginProbe, type OriginWarningCode, probeOrigin, type Warning } from "./origin-probe.js";
export type { Config, Credential, CredentialStatus, MintedCredential } from "./records.js";
export { REGISTRY_CHANNEL, Registry, type RegistryOptions } from "./registry.js";
export { RegistryConfigSource, type RegistryConfigSourceOptions } from "./registry-source.js";
export {
  type LoadMasterKeyOptions,
  loadMasterKey,
  MASTER_KEY_ENV,
  MASTER_KEY_FILE,
  parseMasterKey,
  SecretBox,
} from "./secret-box.js";
export { type ControlPlane, type ControlPlaneOptions, type PinoLike, startControlPlane } from "./server.js";
export type { ConfigCreateBody, ConfigPatchBody, OriginSettings } from "./validation.js";
