import postgres from "postgres";

/** What the platform hands the backend for each binding in w7s.json. */
type Env = {
  DB: {
    connectionString: string;
    host: string;
    port: number;
    user: string;
    password: string;
    database: string;
  };
};

interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

// One pool per connection string: the handler runs many requests in one process.
const pools = new Map<string, { sql: postgres.Sql; ready: Promise<unknown> }>();

function db(env: Env) {
  let entry = pools.get(env.DB.connectionString);
  if (!entry) {
    const sql = postgres(env.DB.connectionString, { max: 5 });
    const ready = sql`create table if not exists notes (
      id bigint generated always as identity primary key,
      body text not null check (length(body) between 1 and 10000),
      created_at timestamptz not null default now()
    )`;
    entry = { sql, ready };
    pools.set(env.DB.connectionString, entry);
    // A failed first statement (database not reachable yet) must not break every later request.
    ready.catch(() => pools.delete(env.DB.connectionString));
  }
  return entry;
}

export default {
  async fetch(request: Request, env: Env, _ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const { sql, ready } = db(env);
    await ready;

    if (url.pathname === "/now" && request.method === "GET") {
      const rows = await sql`select now() as now`;
      return Response.json({ now: rows[0]?.now });
    }
    if (url.pathname === "/notes" && request.method === "GET") {
      const notes = await sql`select id::text, body, created_at from notes order by id`;
      return Response.json({ notes });
    }
    if (url.pathname === "/notes" && request.method === "POST") {
      const input = (await request.json().catch(() => null)) as { body?: unknown } | null;
      if (typeof input?.body !== "string" || input.body.length === 0 || input.body.length > 10_000) {
        return Response.json({ error: 'expected JSON {"body": "<1 to 10000 characters>"}' }, { status: 400 });
      }
      const [note] =
        await sql`insert into notes (body) values (${input.body}) returning id::text, body, created_at`;
      return Response.json({ note }, { status: 201 });
    }
    if (url.pathname === "/") {
      return new Response('notes API: GET /notes, POST /notes {"body": "…"}, GET /now\n', {
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    return Response.json({ error: `no route for ${request.method} ${url.pathname}` }, { status: 404 });
  },
};
