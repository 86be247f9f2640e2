import { LocalPostgres, type LocalPostgresOptions, randomPassword } from "@pgbind/local-postgres";
import { makeTempDir } from "./tmp.ts";

/** A throwaway PostgreSQL for one test file: fast (not durable), removed on stop. */
export interface TestPostgres {
  readonly server: LocalPostgres;
  readonly host: string;
  readonly port: number;
  /** Superuser `postgres` and its password. */
  readonly user: string;
  readonly password: string;
  stop(): Promise<void>;
}

export async function startTestPostgres(
  options: Omit<LocalPostgresOptions, "dataDir" | "password" | "durable"> = {},
): Promise<TestPostgres> {
  const dir = await makeTempDir("pg");
  const password = randomPassword();
  let server: LocalPostgres;
  try {
    server = await LocalPostgres.start({ ...options, dataDir: `${dir.path}/data`, password, durable: false });
  } catch (error) {
    await dir.remove();
    throw error;
  }
  return {
    server,
    host: server.host,
    port: server.port,
    user: server.user,
    password,
    async stop() {
      await server.stop();
      await dir.remove();
    },
  };
}
