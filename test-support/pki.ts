import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A private CA and one server certificate signed by it, all PEM. */
export interface TestPki {
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** A second, unrelated CA: verification against it must fail. */
  readonly otherCaCert: string;
}

/**
 * Generates throwaway certificates with the openssl CLI: a private CA and a server certificate for
 * `localhost`, `127.0.0.1` and `::1` (or the given names). Nothing is written outside a temp dir.
 */
export async function createTestPki(names: { dns?: string[]; ips?: string[] } = {}): Promise<TestPki> {
  const dns = names.dns ?? ["localhost"];
  const ips = names.ips ?? ["127.0.0.1", "::1"];
  const dir = await mkdtemp(path.join(os.tmpdir(), "pgbind-pki-"));
  const f = (name: string) => path.join(dir, name);
  try {
    const ca = async (prefix: string, cn: string) => {
      await run("openssl", [
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        f(`${prefix}.key`),
      ]);
      await run("openssl", [
        "req",
        "-x509",
        "-new",
        "-key",
        f(`${prefix}.key`),
        "-sha256",
        "-days",
        "2",
        "-subj",
        `/CN=${cn}`,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        f(`${prefix}.crt`),
      ]);
    };
    await ca("ca", "pgbind test CA");
    await ca("other", "pgbind unrelated CA");
    await run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f("server.key")]);
    await run("openssl", [
      "req",
      "-new",
      "-key",
      f("server.key"),
      "-subj",
      `/CN=${dns[0] ?? "localhost"}`,
      "-out",
      f("server.csr"),
    ]);
    const san = [...dns.map((d) => `DNS:${d}`), ...ips.map((ip) => `IP:${ip}`)].join(",");
    await writeFile(
      f("ext.cnf"),
      `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`,
    );
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      f("server.csr"),
      "-CA",
      f("ca.crt"),
      "-CAkey",
      f("ca.key"),
      "-CAcreateserial",
      "-days",
      "2",
      "-sha256",
      "-extfile",
      f("ext.cnf"),
      "-out",
      f("server.crt"),
    ]);
    const [caCert, serverCert, serverKey, otherCaCert] = await Promise.all(
      ["ca.crt", "server.crt", "server.key", "other.crt"].map((name) => readFile(f(name), "utf8")),
    );
    return {
      caCert: caCert as string,
      serverCert: serverCert as string,
      serverKey: serverKey as string,
      otherCaCert: otherCaCert as string,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
