import { watch as watchFile } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { type GatewayConfig, GatewayConfigError, parseGatewayConfig } from "./config.js";

/**
 * Where the gateway's bindings come from: a file now, the control plane's registry later. The
 * gateway calls `load()` at start and on SIGHUP, and applies what `watch` reports, without
 * dropping healthy connections.
 */
export interface ConfigSource {
  /** Human-readable origin for logs and errors, e.g. the file path. */
  readonly description: string;
  load(): Promise<GatewayConfig>;
  /** Reports new configs (or why one was rejected) until the returned function is called. */
  watch(onChange: (result: { config: GatewayConfig } | { error: Error }) => void): () => void;
}

/** A JSON config file (see the README for the format); origin passwords may come from the environment. */
export class FileConfigSource implements ConfigSource {
  readonly description: string;
  readonly #file: string;
  readonly #env: Readonly<Record<string, string | undefined>>;

  constructor(file: string, env: Readonly<Record<string, string | undefined>> = process.env) {
    this.#file = path.resolve(file);
    this.description = this.#file;
    this.#env = env;
  }

  async load(): Promise<GatewayConfig> {
    let text: string;
    try {
      text = await readFile(this.#file, "utf8");
    } catch (error) {
      const code = (error as { code?: string }).code;
      throw new GatewayConfigError(this.#file, [
        code === "ENOENT"
          ? "file not found; pass --config <file>"
          : `cannot be read (${code ?? String(error)})`,
      ]);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      // The parser's message quotes the text, which may hold an origin password: keep only the position.
      const position = /position (\d+)/.exec((error as Error).message)?.[1];
      throw new GatewayConfigError(this.#file, [
        `not valid JSON${position ? ` (syntax error at character ${position})` : ""}`,
      ]);
    }
    return parseGatewayConfig(value, this.#file, this.#env);
  }

  watch(onChange: (result: { config: GatewayConfig } | { error: Error }) => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    // Editors replace files (write + rename), so watch the directory and filter by name.
    const watcher = watchFile(path.dirname(this.#file), (_event, name) => {
      if (name !== null && name !== path.basename(this.#file)) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.load().then(
          (config) => onChange({ config }),
          (error: Error) => onChange({ error }),
        );
      }, 100);
    });
    return () => {
      clearTimeout(timer);
      watcher.close();
    };
  }
}
