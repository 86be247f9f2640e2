// A throwaway TLS certificate for a gateway run locally: clients pin it (sslrootcert) and get verify-full.
import { X509Certificate } from "node:crypto";
import net from "node:net";

/** Names every self-signed certificate covers, before the ones the caller adds. */
export const SELF_SIGNED_DEFAULT_HOSTS: readonly string[] = ["localhost", "127.0.0.1", "::1"];

export interface SelfSignedOptions {
  /** DNS names and IP addresses (IPv6 with or without brackets) to add to localhost, 127.0.0.1 and ::1. */
  readonly hosts: readonly string[];
  /** Validity from now, default 365 days (1 to 825). */
  readonly days?: number;
}

export interface SelfSignedCertificate {
  /** The certificate, PEM. Public: clients use it as their root certificate (sslrootcert). */
  readonly cert: string;
  /** The private key, PEM (PKCS#8, ECDSA P-256). Keep it in memory or write it 0600. */
  readonly key: string;
  /** SHA-256 of the DER certificate, `AB:CD:…` as openssl and Node print it. */
  readonly fingerprint256: string;
  /** The subject alternative names: DNS names first, then IP addresses. */
  readonly hosts: readonly string[];
  readonly notAfter: Date;
}

// RFC 1123 labels; a leading `*.` is allowed for a wildcard name.
const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/**
 * Generates an ECDSA P-256 key and a self-signed certificate for it (SHA-256 signature) whose subject
 * alternative names are localhost, 127.0.0.1, ::1 and `hosts`, so a client that trusts the certificate can
 * use sslmode=verify-full against any of them. Throws a TypeError for a host that is neither an IP address
 * nor a DNS name.
 *
 * The certificate is an end entity (basicConstraints CA:FALSE, extKeyUsage serverAuth, which rustls
 * insists on) whose keyUsage includes keyCertSign besides digitalSignature: OpenSSL before 3.0 treats a
 * certificate as self-signed, and so as a usable trust anchor, only with keyCertSign.
 */
export async function createSelfSignedCertificate(
  options: SelfSignedOptions,
): Promise<SelfSignedCertificate> {
  const days = options.days ?? 365;
  if (!Number.isInteger(days) || days < 1 || days > 825) {
    throw new TypeError(`days: ${days} is not an integer from 1 to 825`);
  }
  const dns: string[] = [];
  const ips: string[] = [];
  for (const raw of [...SELF_SIGNED_DEFAULT_HOSTS, ...options.hosts]) {
    const host = raw.trim().replace(/^\[(.*)\]$/, "$1");
    if (net.isIP(host) !== 0) {
      const normalized = normalizeIp(host);
      if (!ips.includes(normalized)) ips.push(normalized);
    } else if (DNS_NAME.test(host) && host.length <= 253) {
      const name = host.toLowerCase().replace(/\.$/, "");
      if (!dns.includes(name)) dns.push(name);
    } else {
      throw new TypeError(`hosts: ${JSON.stringify(raw)} is neither an IP address nor a DNS name`);
    }
  }
  // A little in the past, so a client whose clock runs slightly behind accepts it at once.
  const notBeforeDate = new Date(Date.now() - 5 * 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + days * 86_400_000);
  // Loaded on use: selfsigned and @peculiar/x509 take ~200 ms to import, which every gateway start would pay.
  const { generate } = await import("selfsigned");
  const pems = await generate(
    [
      { name: "commonName", value: dns[0] ?? "localhost" },
      { name: "organizationName", value: "pgbind gateway self-signed" },
    ],
    {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      notBeforeDate,
      notAfterDate,
      extensions: [
        { name: "basicConstraints", cA: false, critical: true },
        { name: "keyUsage", digitalSignature: true, keyCertSign: true, critical: true },
        { name: "extKeyUsage", serverAuth: true },
        {
          name: "subjectAltName",
          altNames: [
            ...dns.map((value) => ({ type: 2 as const, value })),
            ...ips.map((ip) => ({ type: 7 as const, ip })),
          ],
        },
      ],
    },
  );
  const x509 = new X509Certificate(pems.cert);
  return {
    cert: pems.cert,
    key: pems.private,
    fingerprint256: x509.fingerprint256,
    hosts: [...dns, ...ips],
    notAfter: new Date(x509.validTo),
  };
}

/** One spelling per address (`0:0::1` → `::1`), so duplicates are dropped. */
function normalizeIp(ip: string): string {
  if (net.isIPv4(ip)) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}
