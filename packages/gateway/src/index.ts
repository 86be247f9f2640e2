export * from "./config.js";
export * from "./config-source.js";
