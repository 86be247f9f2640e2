import { createHash } from "node:crypto";
import {
  BackendMessage,
  buildClose,
  buildParse,
  type Frame,
  FrontendMessage,
  parseBind,
  parseClose,
  parseDescribe,
  parseParse,
} from "@pgbind/protocol";

/**
 * Named prepared statements under transaction pooling (as PgBouncer 1.21+ and PgDog do it): a client's
 * statement names are private to it, so the gateway renames each to a name derived from its query and
 * parameter types (`pgbind_<hash>`), prepares it on whichever server connection serves the transaction
 * (injecting a Parse whose ParseComplete the client never sees), and remembers which server connection
 * has which statement. Two clients preparing the same query share the server statement.
 */

/** What a client prepared under its own name. */
interface ClientStatement {
  readonly serverName: string;
  readonly query: string;
  readonly paramTypes: readonly number[];
}

/** What to do with a ParseComplete/CloseComplete when it arrives, in order; `sync` marks a Sync/Query. */
type Expectation =
  | { readonly kind: "parse" | "close"; readonly hide: boolean; readonly serverName?: string }
  | { readonly kind: "sync" };

/** The server-connection side: statements it has prepared (by server name). */
export interface PreparedHolder {
  readonly prepared: Set<string>;
}

// Shared markers for the common, unrenamed messages: no allocation per message.
const PASS_PARSE: Expectation = { kind: "parse", hide: false };
const PASS_CLOSE: Expectation = { kind: "close", hide: false };
const SYNC: Expectation = { kind: "sync" };

/** Closing a statement that does not exist is not an error, and answers CloseComplete. */
const NO_SUCH_STATEMENT = "pgbind_close_noop";

export function serverStatementName(query: string, paramTypes: readonly number[]): string {
  return `pgbind_${createHash("sha256").update(query).update("\0").update(paramTypes.join(",")).digest("hex").slice(0, 24)}`;
}

/** One client's statements and the response bookkeeping of its current server connection. */
export class PreparedStatements {
  /** The client's named statements; created at its first named Parse (most clients never make one). */
  #statements: Map<string, ClientStatement> | undefined;
  readonly #expect: Expectation[] = [];

  /** True while responses must be filtered (something was injected, or statements are in flight). */
  get active(): boolean {
    return this.#expect.length > 0;
  }

  /** Forgets response expectations (the server connection was returned or lost). */
  resetServer(): void {
    this.#expect.length = 0;
  }

  /**
   * Translates one client message into what goes to `server`: returns the buffers to send (raw message
   * bytes), or undefined to send the message unchanged.
   */
  translate(frame: Frame, server: PreparedHolder): Buffer[] | undefined {
    switch (frame.code) {
      case FrontendMessage.Parse: {
        // The unnamed statement (an empty name, so a leading NUL) passes through undecoded.
        if (frame.payload[0] === 0) {
          this.#expect.push(PASS_PARSE);
          return undefined;
        }
        const parse = parseParse(frame);
        const serverName = serverStatementName(parse.query, parse.paramTypes);
        this.#statements ??= new Map();
        this.#statements.set(parse.name, { serverName, query: parse.query, paramTypes: parse.paramTypes });
        const out: Buffer[] = [];
        if (server.prepared.has(serverName)) {
          // Re-preparing an identical statement: close it first so the Parse succeeds, hide the CloseComplete.
          out.push(buildClose("S", serverName));
          this.#expect.push({ kind: "close", hide: true });
        }
        out.push(buildParse(serverName, parse.query, parse.paramTypes));
        server.prepared.add(serverName);
        this.#expect.push({ kind: "parse", hide: false, serverName });
        return out;
      }
      case FrontendMessage.Bind: {
        const payload = frame.payload;
        if (payload[payload.indexOf(0) + 1] === 0 || !this.#statements?.size) return undefined;
        const { statement } = parseBind(frame);
        if (statement === "") return undefined;
        const known = this.#statements?.get(statement);
        if (!known) return undefined;
        return [...this.#ensure(known, server), renameBind(frame, statement, known.serverName)];
      }
      case FrontendMessage.Describe: {
        if (frame.payload[1] === 0 || !this.#statements?.size) return undefined;
        const { kind, name } = parseDescribe(frame);
        const known = kind === "S" && name !== "" ? this.#statements?.get(name) : undefined;
        if (!known) return undefined;
        return [...this.#ensure(known, server), rebuild(FrontendMessage.Describe, "S", known.serverName)];
      }
      case FrontendMessage.Close: {
        if (frame.payload[1] === 0) {
          this.#expect.push(PASS_CLOSE);
          return undefined;
        }
        const { kind, name } = parseClose(frame);
        if (kind !== "S" || name === "") {
          this.#expect.push(PASS_CLOSE);
          return undefined;
        }
        // The server statement may be shared with other clients: only the client's name goes away.
        this.#statements?.delete(name);
        this.#expect.push(PASS_CLOSE);
        return [buildClose("S", NO_SUCH_STATEMENT)];
      }
      case FrontendMessage.Sync:
      case FrontendMessage.Query:
        // Always marked: a pipelined Query's ReadyForQuery must not consume expectations queued after it.
        this.#expect.push(SYNC);
        return undefined;
      default:
        return undefined;
    }
  }

  #ensure(known: ClientStatement, server: PreparedHolder): Buffer[] {
    if (server.prepared.has(known.serverName)) return [];
    server.prepared.add(known.serverName);
    this.#expect.push({ kind: "parse", hide: true, serverName: known.serverName });
    return [buildParse(known.serverName, known.query, known.paramTypes)];
  }

  /**
   * Decides for one complete server message whether the client gets it. After an ErrorResponse the
   * server skips to the next Sync, so expectations before it are dropped, and statements whose Parse was
   * skipped are no longer counted as prepared.
   */
  onServerMessage(code: number, server: PreparedHolder): boolean {
    switch (code) {
      case BackendMessage.ParseComplete:
      case BackendMessage.CloseComplete: {
        const index = this.#expect.findIndex((e) => e.kind !== "sync");
        const next = index === -1 ? undefined : this.#expect.splice(index, 1)[0];
        return !(next && next.kind !== "sync" && next.hide);
      }
      case BackendMessage.ErrorResponse: {
        const syncAt = this.#expect.findIndex((e) => e.kind === "sync");
        const skipped = this.#expect.splice(0, syncAt === -1 ? this.#expect.length : syncAt);
        for (const e of skipped) if (e.kind === "parse" && e.serverName) server.prepared.delete(e.serverName);
        return true;
      }
      case BackendMessage.ReadyForQuery: {
        const syncAt = this.#expect.findIndex((e) => e.kind === "sync");
        this.#expect.splice(0, syncAt === -1 ? this.#expect.length : syncAt + 1);
        return true;
      }
      default:
        return true;
    }
  }
}

function renameBind(frame: Frame, from: string, to: string): Buffer {
  const payload = frame.payload;
  const portalEnd = payload.indexOf(0);
  const rest = payload.subarray(portalEnd + 1 + Buffer.byteLength(from) + 1);
  const name = Buffer.from(`${to}\0`);
  const out = Buffer.allocUnsafe(5 + portalEnd + 1 + name.length + rest.length);
  out[0] = FrontendMessage.Bind;
  out.writeInt32BE(out.length - 1, 1);
  payload.copy(out, 5, 0, portalEnd + 1);
  name.copy(out, 5 + portalEnd + 1);
  rest.copy(out, 5 + portalEnd + 1 + name.length);
  return out;
}

function rebuild(code: number, kind: "S" | "P", name: string): Buffer {
  const body = Buffer.from(`${kind}${name}\0`);
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = code;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}
