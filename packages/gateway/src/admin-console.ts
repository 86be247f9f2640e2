// The admin console, PgBouncer style: answers one simple Query with the bytes to send back. No sockets here;
// the gateway routes admin connections to it and writes what it returns.
import { readFile } from "node:fs/promises";
import {
  buildCommandComplete,
  buildDataRow,
  buildErrorResponse,
  buildNoticeResponse,
  buildReadyForQuery,
  buildRowDescription,
  EMPTY_QUERY_RESPONSE,
  type ErrorFields,
  TransactionStatus,
} from "@pgbind/protocol";
import type { BindingView, GatewayView } from "./view.js";

type Cell = string | null;
type Command = (view: GatewayView) => Buffer[] | Promise<Buffer[]>;

/** A failure the console reports as an ErrorResponse with its own SQLSTATE. */
class AdminError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** RowDescription (column names space-separated), one DataRow per row, CommandComplete `SHOW`; all text. */
function table(columns: string, rows: readonly (readonly Cell[])[]): Buffer[] {
  return [
    buildRowDescription(columns.split(" ")),
    ...rows.map((row) => buildDataRow(row)),
    buildCommandComplete("SHOW"),
  ];
}

const time = (ms: number): string => new Date(ms).toISOString();
const flag = (on: boolean): string => (on ? "1" : "0");
const hostPort = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;

/** The origin without its password, which the view does not carry and the console never prints. */
function describeOrigin(origin: BindingView["origin"]): string {
  return `${hostPort(origin.host, origin.port)}/${origin.database} user=${origin.user} sslmode=${origin.sslmode}`;
}

/** A config source described as a URL could carry `user:password@`: mask it, whatever the source says. */
function redact(text: string): string {
  return text.replace(/\/\/([^/@:\s]*):[^/@\s]*@/g, "//$1:***@");
}

async function gatewayVersion(): Promise<string> {
  // ../package.json from both src/ and dist/, as the CLI reads its own version.
  const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return `pgbind gateway ${pkg.version}`;
}

const COMMANDS: Readonly<Record<string, Command>> = {
  "SHOW POOLS": (view) => {
    const clients = view.clients();
    const count = (database: string, waiting: boolean) =>
      clients.filter((c) => c.database === database && (c.state === "waiting") === waiting).length;
    return table(
      "database pool_mode pool_size cl_active cl_waiting sv_active sv_idle sv_connecting maxwait_ms paused",
      view
        .bindings()
        .map((b) => [
          b.database,
          b.poolMode,
          String(b.poolSize),
          String(count(b.database, false)),
          String(count(b.database, true)),
          String(b.pool.active),
          String(b.pool.idle),
          String(b.pool.connecting),
          String(Math.round(b.pool.maxWaitMs)),
          flag(b.pool.paused || view.paused),
        ]),
    );
  },
  "SHOW CLIENTS": (view) =>
    table(
      "pid user database state addr connect_time server_id",
      view
        .clients()
        .map((c) => [
          String(c.processId),
          c.user,
          c.database,
          c.state,
          c.address,
          time(c.connectedAt),
          c.serverId === undefined ? null : String(c.serverId),
        ]),
    ),
  "SHOW SERVERS": (view) =>
    table(
      "id database state origin connect_time prepared_statements",
      view
        .servers()
        .map((s) => [
          String(s.id),
          s.database,
          s.state,
          s.origin,
          time(s.connectedAt),
          String(s.preparedStatements),
        ]),
    ),
  "SHOW STATS": (view) =>
    table(
      "database total_xact_count server_connects server_connect_failures",
      view
        .bindings()
        .map((b) => [
          b.database,
          String(b.transactions),
          String(b.serverConnects),
          String(b.serverConnectFailures),
        ]),
    ),
  "SHOW CONFIG": (view) => {
    const bindings = view.bindings();
    const rows: Cell[][] = [
      ["listen", hostPort(view.listen.host, view.listen.port)],
      ["config_source", redact(view.configSource)],
      ["started_at", time(view.startedAt)],
      ["paused", flag(view.paused)],
      ["login_timeout_ms", String(view.loginTimeoutMs)],
      ["bindings", String(bindings.length)],
    ];
    // Whitelisted fields only: a password must not appear even if a future view carried one.
    for (const b of bindings) {
      const key = `binding.${b.id}`;
      rows.push(
        [`${key}.database`, b.database],
        [`${key}.origin`, describeOrigin(b.origin)],
        [`${key}.pool_mode`, b.poolMode],
        [`${key}.pool_size`, String(b.poolSize)],
        [`${key}.connect_timeout_ms`, String(b.timeouts.connectMs)],
        [`${key}.query_wait_timeout_ms`, String(b.timeouts.queryWaitMs)],
        [`${key}.idle_client_timeout_ms`, String(b.timeouts.idleClientMs)],
        [`${key}.idle_server_timeout_ms`, String(b.timeouts.idleServerMs)],
        [`${key}.server_lifetime_ms`, String(b.timeouts.serverLifetimeMs)],
      );
    }
    return table("key value", rows);
  },
  "SHOW DATABASES": (view) =>
    table(
      "id database host port origin_database origin_user sslmode pool_size pool_mode",
      view
        .bindings()
        .map((b) => [
          b.id,
          b.database,
          b.origin.host,
          String(b.origin.port),
          b.origin.database,
          b.origin.user,
          b.origin.sslmode,
          String(b.poolSize),
          b.poolMode,
        ]),
    ),
  "SHOW VERSION": async () => table("version", [[await gatewayVersion()]]),
  // PgBouncer answers SHOW HELP with a notice, not rows; psql prints it as such.
  "SHOW HELP": () => [
    buildNoticeResponse({
      severity: "NOTICE",
      code: "00000",
      message: "Console usage",
      detail: Object.keys(COMMANDS)
        .map((name) => `\t${name}`)
        .join("\n"),
    }),
    buildCommandComplete("SHOW"),
  ],
  RELOAD: async (view) => {
    try {
      await view.reload();
    } catch (error) {
      throw new AdminError(
        "F0000",
        `RELOAD failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    return [buildCommandComplete("RELOAD")];
  },
  PAUSE: (view) => {
    view.pause();
    return [buildCommandComplete("PAUSE")];
  },
  RESUME: (view) => {
    view.resume();
    return [buildCommandComplete("RESUME")];
  },
};

/** The commands the console understands, in the order SHOW HELP lists them. */
export const ADMIN_COMMANDS: readonly string[] = Object.keys(COMMANDS);

/**
 * PgBouncer-style admin console over a {@link GatewayView}. Stateless apart from the view: one instance can
 * serve every admin connection.
 */
export class AdminConsole {
  readonly #view: GatewayView;

  constructor(view: GatewayView) {
    this.#view = view;
  }

  /**
   * Runs the statements of one simple Query (`;`-separated, case-insensitive) and returns every message to
   * send, ending with ReadyForQuery('I'). As in PostgreSQL, an error ends the query: later statements are
   * skipped; a query with no statement gets EmptyQueryResponse. Never throws.
   */
  async handleQuery(sql: string): Promise<Buffer> {
    // Admin commands hold no quoted text, so a plain split on ';' is exact.
    const statements = sql
      .split(";")
      .map((s) => s.trim().replace(/\s+/g, " "))
      .filter((s) => s !== "");
    const out: Buffer[] = statements.length === 0 ? [EMPTY_QUERY_RESPONSE] : [];
    for (const statement of statements) {
      try {
        out.push(...(await this.#run(statement)));
      } catch (error) {
        out.push(buildErrorResponse(toErrorFields(error)));
        break;
      }
    }
    out.push(buildReadyForQuery(TransactionStatus.Idle));
    return Buffer.concat(out);
  }

  #run(statement: string): Buffer[] | Promise<Buffer[]> {
    const command = COMMANDS[statement.toUpperCase()];
    if (command !== undefined) return command(this.#view);
    const shown = statement.length > 60 ? `${statement.slice(0, 60)}…` : statement;
    throw new AdminError(
      "42601",
      `pgbind: unknown admin command "${shown}"; valid commands: ${ADMIN_COMMANDS.join(", ")}`,
    );
  }
}

function toErrorFields(error: unknown): ErrorFields {
  if (error instanceof AdminError) return { severity: "ERROR", code: error.code, message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { severity: "ERROR", code: "XX000", message: `pgbind: admin command failed: ${message}` };
}
