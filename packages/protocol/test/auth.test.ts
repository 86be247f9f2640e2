import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import pg from "pg";
import postgres from "postgres";
import { startTestPostgres, type TestPostgres } from "../../../test-support/postgres.ts";
import {
  createMockScramVerifier,
  createScramVerifier,
  formatScramVerifier,
  isMd5Verifier,
  isScramVerifier,
  md5PasswordHash,
  md5PasswordHashFromVerifier,
  md5PasswordVerifier,
  parseScramVerifier,
  RandomPool,
  SCRAM_SHA_256,
  type ScramAuthFailure,
  ScramClientSession,
  ScramError,
  type ScramFailureReason,
  ScramKeyCache,
  type ScramServerResult,
  ScramServerSession,
  saslprep,
  scramPasswordBytes,
} from "../src/auth/index.ts";

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** RFC 7677 section 3. */
const RFC = {
  password: "pencil",
  clientNonce: "rOprNGfwEbeRWgbNEkqO",
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  salt: Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"),
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal:
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

const bytes = (text: string) => Buffer.from(text, "latin1");
const text = (data: Buffer) => data.toString("latin1");

function assertFailure(result: ScramServerResult, reason: ScramFailureReason): ScramAuthFailure {
  assert.equal(result.ok, false, `expected a failure (${reason})`);
  const failure = result as ScramAuthFailure;
  assert.equal(failure.reason, reason, failure.detail);
  assert.equal(failure.sqlstate, "28P01");
  assert.equal(failure.severity, "FATAL");
  return failure;
}

function okData(result: ScramServerResult): Buffer {
  if (!result.ok) assert.fail(`unexpected failure ${result.reason}: ${result.detail}`);
  return result.data;
}

/** A whole exchange between our two sessions; returns the server session's last result. */
function exchange(
  verifier: string,
  password: string,
): { server: ScramServerSession; result: ScramServerResult } {
  const server = new ScramServerSession(verifier, { user: "alice" });
  const client = new ScramClientSession(password);
  const first = client.clientFirst(server.start());
  const serverFirst = server.handleClientFirst(first.mechanism, first.data);
  const result = server.handleClientFinal(client.handleServerFirst(okData(serverFirst)));
  if (result.ok) client.verifyServerFinal(result.data);
  return { server, result };
}

/** An independent (test-only) SCRAM client proof, to build client messages our client never sends. */
function proofFor(password: string, salt: Buffer, iterations: number, authMessage: string): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const signature = createHmac("sha256", storedKey).update(authMessage).digest();
  return Buffer.from(clientKey.map((b, i) => b ^ (signature[i] as number))).toString("base64");
}

function expectScramError(fn: () => unknown, code: ScramError["code"]): ScramError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ScramError, `expected a ScramError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

// ---------------------------------------------------------------------------------------------------------
// Pure tests

describe("SCRAM-SHA-256: RFC 7677 test vector", () => {
  const verifier = createScramVerifier(RFC.password, { salt: RFC.salt, iterations: 4096 });

  it("client side produces the RFC's client-first and client-final messages and accepts its server signature", () => {
    const client = new ScramClientSession(RFC.password, { nonce: RFC.clientNonce, username: "user" });
    const first = client.clientFirst([SCRAM_SHA_256]);
    assert.equal(first.mechanism, "SCRAM-SHA-256");
    assert.equal(text(first.data), RFC.clientFirst);
    assert.equal(text(client.handleServerFirst(bytes(RFC.serverFirst))), RFC.clientFinal);
    client.verifyServerFinal(bytes(RFC.serverFinal));
    assert.equal(client.state, "succeeded");
  });

  it("async derivation gives the same bytes", async () => {
    const client = new ScramClientSession(RFC.password, { nonce: RFC.clientNonce, username: "user" });
    client.clientFirst();
    assert.equal(text(await client.handleServerFirstAsync(bytes(RFC.serverFirst))), RFC.clientFinal);
    client.verifyServerFinal(bytes(RFC.serverFinal));
  });

  it("server side produces the RFC's server-first and server-final messages", () => {
    const server = new ScramServerSession(verifier, { nonce: RFC.serverNonce });
    assert.deepEqual(server.start(), ["SCRAM-SHA-256"]);
    assert.equal(
      text(okData(server.handleClientFirst(SCRAM_SHA_256, bytes(RFC.clientFirst)))),
      RFC.serverFirst,
    );
    assert.equal(text(okData(server.handleClientFinal(bytes(RFC.clientFinal)))), RFC.serverFinal);
    assert.equal(server.state, "succeeded");
  });
});

describe("SCRAM verifiers", () => {
  it("formats PostgreSQL's layout and parses back", () => {
    const salt = Buffer.alloc(16, 7);
    const verifier = createScramVerifier("secret", { salt, iterations: 5000 });
    assert.match(
      verifier,
      /^SCRAM-SHA-256\$5000:BwcHBwcHBwcHBwcHBwcHBw==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/,
    );
    const parsed = parseScramVerifier(verifier);
    assert.equal(parsed.iterations, 5000);
    assert.deepEqual(parsed.salt, salt);
    assert.equal(parsed.storedKey.length, 32);
    assert.equal(formatScramVerifier(parsed), verifier);
    assert.ok(isScramVerifier(verifier));
    assert.ok(!isScramVerifier("md5abc"));
  });

  it("uses 4096 iterations and a fresh 16-byte salt by default", () => {
    const a = parseScramVerifier(createScramVerifier("x"));
    const b = parseScramVerifier(createScramVerifier("x"));
    assert.equal(a.iterations, 4096);
    assert.equal(a.salt.length, 16);
    assert.notDeepEqual(a.salt, b.salt);
  });

  it("rejects malformed verifiers with a clear message", () => {
    const good = createScramVerifier("x");
    const key = `${"A".repeat(43)}=`;
    const cases: [string, RegExp][] = [
      ["md5d6a35858d61d85e4a82ab1fb044aba9d", /does not start with "SCRAM-SHA-256\$"/],
      ["SCRAM-SHA-256$4096:c2FsdA==", /expected "SCRAM-SHA-256\$<iterations>/],
      [`SCRAM-SHA-256$4096:c2FsdA==$${key}`, /expected "SCRAM-SHA-256\$<iterations>/],
      [`${good}$extra`, /expected "SCRAM-SHA-256\$<iterations>/],
      [`SCRAM-SHA-256$0:c2FsdA==$${key}:${key}`, /iteration count "0"/],
      [`SCRAM-SHA-256$-1:c2FsdA==$${key}:${key}`, /iteration count "-1"/],
      [`SCRAM-SHA-256$99999999999:c2FsdA==$${key}:${key}`, /iteration count/],
      [`SCRAM-SHA-256$4096:$${key}:${key}`, /salt is not non-empty base64/],
      [`SCRAM-SHA-256$4096:c2F*dA==$${key}:${key}`, /salt/],
      [`SCRAM-SHA-256$4096:c2FsdA==$c2FsdA==:${key}`, /StoredKey is not 32 bytes/],
      [`SCRAM-SHA-256$4096:c2FsdA==$${key}:${key.slice(1)}`, /ServerKey is not 32 bytes/],
    ];
    for (const [input, message] of cases) {
      const error = expectScramError(() => parseScramVerifier(input), "INVALID_VERIFIER");
      assert.match(error.message, message, input);
    }
    expectScramError(() => new ScramServerSession("plaintext"), "INVALID_VERIFIER");
  });

  it("validates creation options", () => {
    expectScramError(() => createScramVerifier("x", { iterations: 0 }), "INVALID_OPTIONS");
    expectScramError(() => createScramVerifier("x", { iterations: 1.5 }), "INVALID_OPTIONS");
    expectScramError(() => createScramVerifier("x", { salt: new Uint8Array() }), "INVALID_OPTIONS");
  });

  it("mock verifiers are deterministic per user and match no password", () => {
    const secret = randomBytes(32);
    const a = createMockScramVerifier("ghost", secret);
    assert.equal(a, createMockScramVerifier("ghost", secret));
    assert.notEqual(a, createMockScramVerifier("ghost2", secret));
    assert.equal(parseScramVerifier(a).salt.length, 16);
    assertFailure(exchange(a, "").result, "invalid-proof");
    assertFailure(exchange(a, "ghost").result, "invalid-proof");
  });
});

describe("SASLprep (PostgreSQL's)", () => {
  it("leaves ASCII alone, control characters included", () => {
    assert.equal(saslprep("pencil"), "pencil");
    assert.equal(saslprep("a\tb\u0007"), "a\tb\u0007");
    assert.equal(saslprep(""), "");
  });

  it("maps, normalises and prohibits like RFC 4013's examples", () => {
    assert.equal(saslprep("I\u00ADX"), "IX"); // soft hyphen mapped to nothing
    assert.equal(saslprep("\u00AA"), "a"); // NFKC
    assert.equal(saslprep("\u2168"), "IX"); // NFKC
    assert.equal(saslprep("pass\u00A0w\u2003rd"), "pass w rd"); // non-ASCII spaces
    assert.equal(saslprep("pa\u0308ssword"), "p\u00E4ssword"); // NFKC composes
    assert.equal(saslprep("\uFB01x"), "fix");
    assert.equal(saslprep("\u00E9\u0007"), null); // prohibited (control character)
    assert.equal(saslprep("\u0627\u0031"), null); // bidi: RandALCat must end the string
    assert.equal(saslprep("\u05D0a\u05D1"), null); // bidi: RandALCat with LCat
    assert.equal(saslprep("\u05D0\u05D1"), "\u05D0\u05D1");
    assert.equal(saslprep("\u{1F600}\u00E9"), null); // unassigned in Unicode 3.2
    assert.equal(saslprep("\u00AD"), null); // empty after mapping
    assert.equal(saslprep("\uD800x\u00E9"), null); // unpaired surrogate: not UTF-8
  });

  it("falls back to the raw bytes when SASLprep rejects the password or it is not UTF-8", () => {
    assert.deepEqual(scramPasswordBytes("\uFB01\tx"), Buffer.from("\uFB01\tx"));
    assert.deepEqual(scramPasswordBytes("\uFB01x"), Buffer.from("fix"));
    assert.deepEqual(scramPasswordBytes(Buffer.from("\uFB01x")), Buffer.from("fix"));
    const latin1 = Buffer.from([0x70, 0xe4, 0x73, 0x73]); // "päss" in Latin-1: not UTF-8
    assert.deepEqual(scramPasswordBytes(latin1), latin1);
    assert.deepEqual(scramPasswordBytes(Buffer.from("\uFEFFa\u00E9")), Buffer.from("a\u00E9")); // U+FEFF mapped away
  });
});

describe("SCRAM server and client sessions against each other", () => {
  const verifier = createScramVerifier("correct horse");

  it("succeed with the right password, with strings or bytes", () => {
    const { server, result } = exchange(verifier, "correct horse");
    assert.ok(result.ok);
    assert.equal(server.state, "succeeded");
    const client = new ScramClientSession(Buffer.from("correct horse"));
    const s = new ScramServerSession(verifier);
    const first = client.clientFirst();
    const final = s.handleClientFinal(
      client.handleServerFirst(okData(s.handleClientFirst(first.mechanism, first.data))),
    );
    client.verifyServerFinal(okData(final));
  });

  it("succeed when the password needs SASLprep on both sides", () => {
    const v = createScramVerifier("pass\u00A0w\u00F6rd");
    assert.ok(exchange(v, "pass w\u00F6rd").result.ok);
    assert.ok(exchange(v, "pass\u2003wo\u0308rd").result.ok);
  });

  it("fail with a wrong password, without saying why to the client", () => {
    const { server, result } = exchange(verifier, "battery staple");
    const failure = assertFailure(result, "invalid-proof");
    assert.equal(failure.message, 'password authentication failed for user "alice"');
    assert.equal(server.state, "failed");
    const anonymous = new ScramServerSession(verifier).handleClientFinal(bytes("x"));
    assert.equal((anonymous as ScramAuthFailure).message, "password authentication failed");
  });

  it("accept clients that send n=* or a user name, and gs2 flag y", () => {
    for (const [header, user] of [
      ["n,,", "*"],
      ["n,,", "some=3Duser"],
      ["y,,", ""],
    ] as const) {
      const v = parseScramVerifier(createScramVerifier("pw", { iterations: 10 }));
      const server = new ScramServerSession(v);
      const bare = `n=${user},r=abcdef`;
      const serverFirst = text(okData(server.handleClientFirst(SCRAM_SHA_256, bytes(header + bare))));
      const nonce = serverFirst.split(",")[0]?.slice(2) ?? "";
      const withoutProof = `c=${Buffer.from(header).toString("base64")},r=${nonce}`;
      const proof = proofFor("pw", v.salt, 10, `${bare},${serverFirst},${withoutProof}`);
      okData(server.handleClientFinal(bytes(`${withoutProof},p=${proof}`)));
    }
  });

  function serverAfterFirst(): {
    server: ScramServerSession;
    client: ScramClientSession;
    clientFinal: string;
  } {
    const server = new ScramServerSession(verifier);
    const client = new ScramClientSession("correct horse");
    const first = client.clientFirst();
    const clientFinal = text(
      client.handleServerFirst(okData(server.handleClientFirst(first.mechanism, first.data))),
    );
    return { server, client, clientFinal };
  }

  it("reject a tampered nonce", () => {
    const { server, clientFinal } = serverAfterFirst();
    const tampered = clientFinal.replace(/,r=([^,]*)x?/, (_m, nonce: string) => `,r=${nonce}x`);
    assertFailure(server.handleClientFinal(bytes(tampered)), "nonce-mismatch");
  });

  it("reject a tampered proof", () => {
    const { server, clientFinal } = serverAfterFirst();
    const proof = Buffer.from(clientFinal.split(",p=")[1] ?? "", "base64");
    proof[0] = (proof[0] as number) ^ 1;
    const tampered = `${clientFinal.split(",p=")[0]},p=${proof.toString("base64")}`;
    assertFailure(server.handleClientFinal(bytes(tampered)), "invalid-proof");
  });

  it("reject a proof replayed in another session (fresh server nonce)", () => {
    const a = serverAfterFirst();
    const server = new ScramServerSession(verifier);
    okData(
      server.handleClientFirst(SCRAM_SHA_256, bytes(`n,,n=,r=${a.clientFinal.split(",")[1]?.slice(2)}`)),
    );
    assertFailure(server.handleClientFinal(bytes(a.clientFinal)), "nonce-mismatch");
  });

  it("reject a channel-binding change between the two client messages", () => {
    const { server, clientFinal } = serverAfterFirst();
    assertFailure(
      server.handleClientFinal(bytes(clientFinal.replace("c=biws", "c=eSws"))),
      "channel-binding-mismatch",
    );
  });

  it("reject channel binding, authzid, mandatory extensions and unknown mechanisms", () => {
    const first = (mechanism: string, data: string) =>
      new ScramServerSession(verifier).handleClientFirst(mechanism, bytes(data));
    assertFailure(first(SCRAM_SHA_256, "p=tls-server-end-point,,n=,r=abc"), "channel-binding-unsupported");
    assertFailure(
      first("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc"),
      "channel-binding-unsupported",
    );
    assertFailure(first("SCRAM-SHA-1", "n,,n=,r=abc"), "unsupported-mechanism");
    assertFailure(first("", "n,,n=,r=abc"), "unsupported-mechanism");
    assertFailure(first(SCRAM_SHA_256, "n,a=bob,n=,r=abc"), "unsupported-feature");
    assertFailure(first(SCRAM_SHA_256, "n,,m=ext,n=,r=abc"), "unsupported-feature");
  });

  it("reject malformed client messages", () => {
    const first = (data: string) =>
      new ScramServerSession(verifier).handleClientFirst(SCRAM_SHA_256, bytes(data));
    for (const bad of [
      "",
      "n",
      "n,,",
      "n,,n=",
      "x,,n=,r=abc",
      "n,,r=abc",
      "n,,n=,r=",
      "n,,n=,r=a b",
      "n,,n=a=b,r=abc",
      "n,,n=,r=abc,",
      "n,,n=,r=abc,1=x",
      "n,,n=,r=abc\0",
      "n,,n=,x=abc",
    ]) {
      assertFailure(first(bad), "malformed-message");
    }
    assert.ok(first("n,,n=,r=abc,x=ext").ok, "unknown extensions after the nonce are ignored");
    assertFailure(
      new ScramServerSession(verifier).handleClientFirst(SCRAM_SHA_256, null),
      "malformed-message",
    );

    const final = (mutate: (clientFinal: string) => string) => {
      const { server, clientFinal } = serverAfterFirst();
      return server.handleClientFinal(bytes(mutate(clientFinal)));
    };
    assertFailure(
      final(() => ""),
      "malformed-message",
    );
    assertFailure(
      final((m) => m.replace("c=biws,", "")),
      "malformed-message",
    );
    assertFailure(
      final((m) => m.replace(",p=", ",q=")),
      "malformed-message",
    );
    assertFailure(
      final((m) => `${m.slice(0, -4)}`),
      "malformed-message",
    );
    assertFailure(
      final((m) => `${m}AAAA`),
      "malformed-message",
    );
    assertFailure(
      final((m) => `${m},x=1`),
      "malformed-message",
    );
    assertFailure(
      final((m) => m.replace(",p=", ",x=1,p=").replace("c=biws", "c=biws")),
      "invalid-proof",
    );
  });

  it("reject messages out of order, and anything after a failure", () => {
    const server = new ScramServerSession(verifier);
    assertFailure(server.handleClientFinal(bytes("c=biws,r=x,p=x")), "unexpected-message");
    assertFailure(server.handleClientFirst(SCRAM_SHA_256, bytes("n,,n=,r=abc")), "unexpected-message");
    const { server: done } = exchange(verifier, "correct horse");
    assertFailure(done.handleClientFinal(bytes("x")), "unexpected-message");
  });

  it("never throw on arbitrary input, and never accept a mutated client-final-message", () => {
    fc.assert(
      fc.property(fc.string(), fc.uint8Array({ maxLength: 300 }), (mechanism, data) => {
        const result = new ScramServerSession(verifier).handleClientFirst(mechanism, data);
        assert.ok(result.ok || result.sqlstate === "28P01");
      }),
      { numRuns: 500 },
    );
    const attrs = fc.constantFrom(
      "n",
      "y",
      "p=x",
      "a=b",
      "n=",
      "n=*",
      "r=abc",
      "m=1",
      "c=biws",
      "x=1",
      "",
      "=",
    );
    fc.assert(
      fc.property(fc.array(attrs, { maxLength: 8 }), (parts) => {
        const result = new ScramServerSession(verifier).handleClientFirst(
          SCRAM_SHA_256,
          bytes(parts.join(",")),
        );
        assert.ok(result.ok || result.sqlstate === "28P01");
      }),
      { numRuns: 500 },
    );
    // Regression (found by the property below): a proof spelled with non-zero unused base64 bits
    // decodes to the same bytes; it must still be refused.
    {
      const { server, clientFinal } = serverAfterFirst();
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const textFinal = clientFinal;
      const last = textFinal.length - 2; // the character before the single "=" of a 32-byte proof
      const swapped = alphabet[alphabet.indexOf(textFinal[last] as string) ^ 1] as string;
      const mutated = Buffer.from(`${textFinal.slice(0, last)}${swapped}=`, "latin1");
      assert.equal(server.handleClientFinal(mutated).ok, false);
    }
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (position, flip) => {
        const { server, clientFinal } = serverAfterFirst();
        const mutated = Buffer.from(clientFinal, "latin1");
        const i = position % mutated.length;
        mutated[i] = (mutated[i] as number) ^ flip;
        const result = server.handleClientFinal(mutated);
        assert.equal(result.ok, false, `accepted ${text(mutated)}`);
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (data) => {
        const { server } = serverAfterFirst();
        const result = server.handleClientFinal(data);
        assert.equal(result.ok, false);
      }),
      { numRuns: 200 },
    );
  });
});

describe("SCRAM client session checks the server", () => {
  const nonce = "clientnonce";
  const started = (options: { maxIterations?: number } = {}) => {
    const client = new ScramClientSession("pw", { nonce, ...options });
    client.clientFirst();
    return client;
  };

  it("requires SCRAM-SHA-256 among the offered mechanisms", () => {
    const client = new ScramClientSession("pw");
    const error = expectScramError(
      () => client.clientFirst(["SCRAM-SHA-256-PLUS", "OAUTHBEARER"]),
      "UNSUPPORTED",
    );
    assert.match(error.message, /offers "SCRAM-SHA-256-PLUS", "OAUTHBEARER"/);
    assert.deepEqual(text(new ScramClientSession("pw", { nonce: "n1" }).clientFirst().data), "n,,n=,r=n1");
    assert.deepEqual(
      text(new ScramClientSession("pw", { nonce: "n1", username: "a=b,c" }).clientFirst().data),
      "n,,n=a=3Db=2Cc,r=n1",
    );
  });

  it("rejects a server nonce that does not extend ours", () => {
    expectScramError(
      () => started().handleServerFirst(bytes("r=othernonce123,s=c2FsdA==,i=4096")),
      "NONCE_MISMATCH",
    );
    expectScramError(
      () => started().handleServerFirst(bytes(`r=${nonce},s=c2FsdA==,i=4096`)),
      "NONCE_MISMATCH",
    );
  });

  it("bounds the iteration count", () => {
    const msg = (i: string) => bytes(`r=${nonce}xyz,s=c2FsdA==,i=${i}`);
    expectScramError(() => started().handleServerFirst(msg("0")), "ITERATIONS_OUT_OF_RANGE");
    expectScramError(() => started().handleServerFirst(msg("10000001")), "ITERATIONS_OUT_OF_RANGE");
    expectScramError(() => started().handleServerFirst(msg("999999999999")), "ITERATIONS_OUT_OF_RANGE");
    expectScramError(
      () => started({ maxIterations: 100 }).handleServerFirst(msg("101")),
      "ITERATIONS_OUT_OF_RANGE",
    );
    expectScramError(() => started().handleServerFirst(msg("-1")), "MALFORMED_MESSAGE");
    expectScramError(() => started().handleServerFirst(msg("1e3")), "MALFORMED_MESSAGE");
    assert.ok(started().handleServerFirst(msg("1")).length > 0);
  });

  it("rejects malformed server-first messages and unsupported extensions", () => {
    expectScramError(
      () => started().handleServerFirst(bytes(`m=x,r=${nonce}x,s=c2FsdA==,i=1`)),
      "UNSUPPORTED",
    );
    for (const bad of [
      "",
      `r=${nonce}x`,
      `r=${nonce}x,s=,i=1`,
      `r=${nonce}x,s=***,i=1`,
      `s=c2FsdA==,r=${nonce}x,i=1`,
    ]) {
      expectScramError(() => started().handleServerFirst(bytes(bad)), "MALFORMED_MESSAGE");
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (data) => {
        try {
          started().handleServerFirst(data);
        } catch (error) {
          assert.ok(error instanceof ScramError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("rejects a wrong server signature (a server that does not know the password) and server errors", () => {
    const mitm = new ScramServerSession(createScramVerifier("pw"));
    const client = new ScramClientSession("pw");
    const first = client.clientFirst();
    const serverFinal = text(
      okData(
        mitm.handleClientFinal(
          client.handleServerFirst(okData(mitm.handleClientFirst(first.mechanism, first.data))),
        ),
      ),
    );
    const signature = Buffer.from(serverFinal.slice(2), "base64");
    signature[31] = (signature[31] as number) ^ 0x80;
    expectScramError(
      () => client.verifyServerFinal(bytes(`v=${signature.toString("base64")}`)),
      "SERVER_SIGNATURE_MISMATCH",
    );
    assert.equal(client.state, "failed");

    const errored = () => {
      const c = started();
      c.handleServerFirst(bytes(`r=${nonce}x,s=c2FsdA==,i=1`));
      return c;
    };
    const error = expectScramError(
      () => errored().verifyServerFinal(bytes("e=invalid-proof")),
      "SERVER_ERROR",
    );
    assert.match(error.message, /invalid-proof/);
    expectScramError(() => errored().verifyServerFinal(bytes("v=short")), "MALFORMED_MESSAGE");
    expectScramError(() => errored().verifyServerFinal(bytes("v=AAAA")), "SERVER_SIGNATURE_MISMATCH");
  });

  it("enforces the call order", () => {
    const client = new ScramClientSession("pw");
    expectScramError(() => client.handleServerFirst(bytes("r=x")), "INVALID_STATE");
    expectScramError(() => client.verifyServerFinal(bytes("v=x")), "INVALID_STATE");
    client.clientFirst();
    expectScramError(() => client.clientFirst(), "INVALID_STATE");
    expectScramError(() => new ScramClientSession("pw", { nonce: "a,b" }), "INVALID_OPTIONS");
    expectScramError(() => new ScramClientSession("pw", { maxIterations: 0 }), "INVALID_OPTIONS");
  });
});

describe("ScramKeyCache", () => {
  it("derives once per (password, salt, iterations) and evicts the least recently used", async () => {
    const cache = new ScramKeyCache(2);
    const pw = scramPasswordBytes("pw");
    const salt = Buffer.from("salt");
    const a = cache.saltedPassword(pw, salt, 4096);
    assert.equal(cache.saltedPassword(pw, salt, 4096), a, "a hit returns the cached value");
    assert.deepEqual(a, pbkdf2Sync("pw", salt, 4096, 32, "sha256"));
    assert.notEqual(cache.saltedPassword(pw, salt, 4097), a);
    cache.saltedPassword(pw, salt, 4096); // touch: 4097 is now the oldest
    cache.saltedPassword(scramPasswordBytes("other"), salt, 4096);
    assert.equal(cache.size, 2);
    assert.equal(cache.saltedPassword(pw, salt, 4096), a);
    const [x, y] = await Promise.all([
      cache.saltedPasswordAsync(pw, Buffer.from("salt2"), 4096),
      cache.saltedPasswordAsync(pw, Buffer.from("salt2"), 4096),
    ]);
    assert.equal(x, y, "concurrent misses share one derivation");
    assert.equal(await cache.saltedPasswordAsync(pw, Buffer.from("salt2"), 4096), x);
    cache.clear();
    assert.equal(cache.size, 0);
    assert.throws(() => new ScramKeyCache(0), ScramError);
  });

  it("is used by client sessions", () => {
    const cache = new ScramKeyCache();
    const verifier = createScramVerifier("pw", { iterations: 100_000 });
    const timed = () => {
      const server = new ScramServerSession(verifier);
      const client = new ScramClientSession("pw", { cache });
      const first = client.clientFirst();
      const serverFirst = okData(server.handleClientFirst(first.mechanism, first.data));
      const start = performance.now();
      const clientFinal = client.handleServerFirst(serverFirst);
      const elapsed = performance.now() - start;
      client.verifyServerFinal(okData(server.handleClientFinal(clientFinal)));
      return elapsed;
    };
    const cold = timed();
    const warm = timed();
    assert.equal(cache.size, 1);
    assert.ok(warm < cold / 3, `cached derivation should be much faster (cold ${cold} ms, warm ${warm} ms)`);
  });
});

describe("RandomPool", () => {
  it("hands out every byte once, across refills, in buffers of their own", () => {
    const pool = new RandomPool(64);
    const draws = Array.from({ length: 40 }, (_, i) => pool.bytes((i % 7) + 1));
    for (const [i, draw] of draws.entries()) assert.equal(draw.length, (i % 7) + 1);
    // A block handed out twice would repeat its bytes: no 8-byte run of 155 random bytes should recur.
    const all = Buffer.concat(draws);
    const runs = new Set<string>();
    for (let i = 0; i + 8 <= all.length; i++) runs.add(all.subarray(i, i + 8).toString("hex"));
    assert.equal(runs.size, all.length - 7, "random bytes were handed out twice");
    const kept = Buffer.from(draws[0] as Buffer);
    for (let i = 0; i < 100; i++) pool.bytes(16);
    assert.deepEqual(draws[0], kept, "a refill changed bytes already handed out");
    assert.equal(pool.bytes(0).length, 0);
    assert.equal(pool.bytes(1000).length, 1000);
  });

  it("gives positive 31-bit integers, as cancel keys need", () => {
    const pool = new RandomPool();
    const values = Array.from({ length: 2000 }, () => pool.positiveInt32());
    for (const v of values) assert.ok(Number.isInteger(v) && v >= 1 && v <= 2 ** 31 - 1, String(v));
    assert.ok(
      values.some((v) => v >= 2 ** 30),
      "the high bit range is never reached",
    );
    assert.ok(new Set(values).size > 1990);
  });

  it("rejects a bad block size or count, naming the value", () => {
    assert.throws(() => new RandomPool(8), /blockBytes must be an integer in 64…65536, got 8/);
    assert.throws(() => new RandomPool(1.5), /got 1.5/);
    assert.throws(() => new RandomPool().bytes(-1), /count must be a non-negative integer, got -1/);
  });

  it("serves SCRAM server nonces: fresh per session, and the exchange still verifies", () => {
    const verifier = createScramVerifier("correct horse");
    const random = new RandomPool(64);
    const nonces = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const server = new ScramServerSession(verifier, { random });
      const client = new ScramClientSession("correct horse", { nonce: "fixed-client-nonce" });
      const first = client.clientFirst(server.start());
      const serverFirst = text(okData(server.handleClientFirst(first.mechanism, first.data)));
      const nonce = /^r=fixed-client-nonce([^,]+),/.exec(serverFirst)?.[1];
      assert.equal(Buffer.from(nonce ?? "", "base64").length, 18, serverFirst);
      nonces.add(nonce ?? "");
      const final = server.handleClientFinal(client.handleServerFirst(bytes(serverFirst)));
      client.verifyServerFinal(okData(final));
    }
    assert.equal(nonces.size, 10);
  });
});

describe("MD5", () => {
  it("computes PostgreSQL's stored hash and challenge response", () => {
    // The well-known value for user postgres, password postgres.
    assert.equal(md5PasswordVerifier("postgres", "postgres"), "md53175bce1d3201d16594cebf9d7eb3f9d");
    const salt = Buffer.from([0x01, 0x02, 0x03, 0x04]);
    const inner = createHash("md5").update("secretalice").digest("hex");
    const expected = `md5${createHash("md5").update(inner).update(salt).digest("hex")}`;
    assert.equal(md5PasswordHash("alice", "secret", salt), expected);
    assert.equal(md5PasswordHashFromVerifier(md5PasswordVerifier("alice", "secret"), salt), expected);
    assert.ok(isMd5Verifier(md5PasswordVerifier("a", "b")));
    assert.throws(() => md5PasswordHash("alice", "secret", Buffer.alloc(3)), RangeError);
    assert.throws(() => md5PasswordHashFromVerifier("md5xyz", salt), RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Minimal hand-written wire protocol for the tests (independent of the package's framer)

interface Message {
  readonly type: string;
  readonly body: Buffer;
}

const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstr = (s: string) => Buffer.concat([Buffer.from(s, "utf8"), Buffer.from([0])]);
const frame = (type: string, ...parts: Buffer[]) => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from(type, "latin1"), int32(body.length + 4), body]);
};
const startupMessage = (params: Record<string, string>) => {
  const body = Buffer.concat([
    int32(196608),
    ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]),
    Buffer.from([0]),
  ]);
  return Buffer.concat([int32(body.length + 4), body]);
};

function cstrings(body: Buffer): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < body.length) {
    const end = body.indexOf(0, at);
    if (end < 0) break;
    out.push(body.toString("utf8", at, end));
    at = end + 1;
  }
  return out;
}

/** ErrorResponse fields by code letter. */
function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const field of cstrings(body)) if (field.length > 0) fields[field[0] as string] = field.slice(1);
  return fields;
}

/** Buffers a socket and hands out whole messages. */
class Wire {
  readonly socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  #closed = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#waiter?.();
    });
    const close = () => {
      this.#closed = true;
      this.#waiter?.();
    };
    socket.on("close", close);
    socket.on("error", close);
  }

  static connect(host: string, port: number): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port }, () => resolve(new Wire(socket)));
      socket.once("error", reject);
    });
  }

  async #take(n: number): Promise<Buffer> {
    while (this.#buffer.length < n) {
      if (this.#closed) throw new Error("connection closed");
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
      this.#waiter = undefined;
    }
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  /** A typed message: type byte, int32 length, body. */
  async read(): Promise<Message> {
    const header = await this.#take(5);
    const body = await this.#take(header.readInt32BE(1) - 4);
    return { type: String.fromCharCode(header[0] as number), body };
  }

  /** An untyped message (StartupMessage, SSLRequest): int32 length, body. */
  async readUntyped(): Promise<Buffer> {
    const header = await this.#take(4);
    return this.#take(header.readInt32BE(0) - 4);
  }

  write(data: Buffer): void {
    this.socket.write(data);
  }

  end(): void {
    this.socket.end();
  }
}

type LoginResult = { readonly ok: true } | { readonly ok: false; readonly error: Record<string, string> };

/** Logs in to a real PostgreSQL over a raw socket with our ScramClientSession (or MD5). */
async function rawLogin(
  server: TestPostgres,
  user: string,
  password: string,
  options: { cache?: ScramKeyCache; sync?: boolean; onAuthRequest?: (code: number) => void } = {},
): Promise<LoginResult> {
  const wire = await Wire.connect(server.host, server.port);
  try {
    wire.write(startupMessage({ user, database: "postgres" }));
    let scram: ScramClientSession | undefined;
    for (;;) {
      const message = await wire.read();
      if (message.type === "E") return { ok: false, error: errorFields(message.body) };
      if (message.type !== "R") assert.fail(`unexpected message ${message.type} during authentication`);
      const code = message.body.readInt32BE(0);
      const data = message.body.subarray(4);
      options.onAuthRequest?.(code);
      if (code === 0) break; // AuthenticationOk
      if (code === 5) {
        wire.write(frame("p", cstr(md5PasswordHash(user, password, data))));
      } else if (code === 10) {
        scram = new ScramClientSession(password, options.cache ? { cache: options.cache } : {});
        const first = scram.clientFirst(cstrings(data).filter((m) => m.length > 0));
        wire.write(frame("p", cstr(first.mechanism), int32(first.data.length), first.data));
      } else if (code === 11) {
        assert.ok(scram);
        const final = options.sync ? scram.handleServerFirst(data) : await scram.handleServerFirstAsync(data);
        wire.write(frame("p", final));
      } else if (code === 12) {
        assert.ok(scram);
        scram.verifyServerFinal(data);
      } else {
        assert.fail(`unexpected authentication request ${code}`);
      }
    }
    if (scram)
      assert.equal(
        scram.state,
        "succeeded",
        "AuthenticationOk came before a verified AuthenticationSASLFinal",
      );
    for (;;) {
      const message = await wire.read();
      if (message.type === "E") return { ok: false, error: errorFields(message.body) };
      if (message.type === "Z") break;
    }
    wire.write(frame("X"));
    return { ok: true };
  } finally {
    wire.end();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Against a real PostgreSQL

describe("against a real PostgreSQL", { timeout: 120_000 }, () => {
  let server: TestPostgres;
  let admin: pg.Client;
  let roleCount = 0;

  before(async () => {
    server = await startTestPostgres();
    admin = new pg.Client({
      host: server.host,
      port: server.port,
      user: server.user,
      password: server.password,
      database: "postgres",
    });
    await admin.connect();
  });

  after(async () => {
    await admin?.end();
    await server?.stop();
  });

  async function createRole(
    password: string,
    encryption = "scram-sha-256",
  ): Promise<{ name: string; stored: string }> {
    const name = `role_${++roleCount}`;
    await admin.query(`set password_encryption = '${encryption}'`);
    await admin.query(`create role ${name} login password ${admin.escapeLiteral(password)}`);
    const { rows } = await admin.query<{ rolpassword: string }>(
      "select rolpassword from pg_authid where rolname = $1",
      [name],
    );
    return { name, stored: rows[0]?.rolpassword ?? assert.fail("role not found") };
  }

  const PASSWORDS: readonly [string, string][] = [
    ["ASCII", "s3cret-Pass"],
    ["ASCII with a control character (no SASLprep for ASCII)", "tab\there"],
    ["Latin-1 letters", "p\u00E4ssw\u00F6rd"],
    ["decomposed (NFKC composes)", "pa\u0308sswo\u0308rd"],
    ["CJK", "\u5BC6\u7801"],
    ["non-ASCII space U+00A0", "pass\u00A0word"],
    ["ideographic space and em space", "\u5BC6\u3000\u7801\u2003x"],
    ["mapped to nothing (soft hyphen, ZWJ) and a ligature", "\uFB01\u00AD\u200Dx\u00E9"],
    ["compatibility characters", "\u2168\u00AA\uFF21"],
    ["prohibited → raw bytes (ligature + tab)", "\uFB01\tpass"],
    ["unassigned in Unicode 3.2 → raw bytes (emoji)", "\u{1F600}\uFB01"],
    ["bidi violation → raw bytes", "\u05D0\uFB01\u05D1"],
    ["right-to-left only", "\u05D0\u05D1\u05D2"],
    ["only mapped-to-nothing → raw bytes", "\u00AD"],
    ["quotes and backslashes", `p@ss:w/o#r%d?&=+ 'q' "q" \\x`],
  ];

  it("(a) our verifier equals what PostgreSQL stores, for the same salt and iterations", async () => {
    for (const [label, password] of PASSWORDS) {
      const { stored } = await createRole(password);
      const { salt, iterations } = parseScramVerifier(stored);
      assert.equal(createScramVerifier(password, { salt, iterations }), stored, label);
    }
    await admin.query("set scram_iterations = 10000");
    try {
      const { stored } = await createRole("p\u00E4ss");
      const { salt, iterations } = parseScramVerifier(stored);
      assert.equal(iterations, 10000);
      assert.equal(createScramVerifier("p\u00E4ss", { salt, iterations }), stored);
    } finally {
      await admin.query("reset scram_iterations");
    }
  });

  it("(b) a verifier computed here is accepted by PostgreSQL and usable to log in with pg", async () => {
    for (const password of ["verifier-pass", "pass\u00A0w\u00F6rd"]) {
      const verifier = createScramVerifier(password);
      const name = `verifier_${++roleCount}`;
      await admin.query(`create role ${name} login password '${verifier}'`);
      const { rows } = await admin.query("select rolpassword from pg_authid where rolname = $1", [name]);
      assert.equal(rows[0]?.rolpassword, verifier);
      const client = new pg.Client({
        host: server.host,
        port: server.port,
        user: name,
        password,
        database: "postgres",
      });
      await client.connect();
      const result = await client.query<{ user: string }>("select current_user as user");
      assert.equal(result.rows[0]?.user, name);
      await client.end();
    }
  });

  it("(c) ScramClientSession logs in over a raw socket, for every password", async () => {
    const cache = new ScramKeyCache();
    for (const [label, password] of PASSWORDS) {
      const { name } = await createRole(password);
      assert.deepEqual(await rawLogin(server, name, password, { cache }), { ok: true }, label);
    }
    assert.equal(cache.size, PASSWORDS.length);
  });

  it("(c) sync and async derivation, with and without a cache, and the superuser", async () => {
    const cache = new ScramKeyCache();
    const { name } = await createRole("cached-pw");
    assert.deepEqual(await rawLogin(server, name, "cached-pw", { sync: true }), { ok: true });
    assert.deepEqual(await rawLogin(server, name, "cached-pw", { cache }), { ok: true });
    assert.deepEqual(await rawLogin(server, name, "cached-pw", { cache, sync: true }), { ok: true });
    assert.equal(cache.size, 1);
    assert.deepEqual(await rawLogin(server, server.user, server.password), { ok: true });
  });

  it("(c) a wrong password gets ErrorResponse 28P01", async () => {
    const { name } = await createRole("right-pw");
    const result = await rawLogin(server, name, "wrong-pw");
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.error.C, "28P01");
      assert.equal(result.error.M, `password authentication failed for user "${name}"`);
    }
  });

  it("MD5: the stored hash matches and the challenge response logs in (pg_hba method md5)", async () => {
    const { name, stored } = await createRole("md5-p\u00E4ss", "md5");
    assert.equal(stored, md5PasswordVerifier(name, "md5-p\u00E4ss"));
    const hbaPath = path.join(server.server.dataDir, "pg_hba.conf");
    const hba = await readFile(hbaPath, "utf8");
    await writeFile(hbaPath, `host all ${name} 127.0.0.1/32 md5\nhost all ${name} ::1/128 md5\n${hba}`);
    await admin.query("select pg_reload_conf()");
    let codes: number[] = [];
    for (let attempt = 0; attempt < 50 && !codes.includes(5); attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100));
      codes = [];
      const result = await rawLogin(server, name, "md5-p\u00E4ss", {
        onAuthRequest: (code) => codes.push(code),
      });
      if (codes.includes(5)) assert.deepEqual(result, { ok: true });
    }
    assert.ok(codes.includes(5), "the server never asked for MD5 after the pg_hba.conf reload");
    const wrong = await rawLogin(server, name, "md5-pass");
    assert.equal(wrong.ok === false && wrong.error.C, "28P01");
  });
});

// ---------------------------------------------------------------------------------------------------------
// ScramServerSession against real drivers, through a toy server

interface ToyServer {
  readonly port: number;
  readonly failures: ScramAuthFailure[];
  readonly successes: string[];
  close(): Promise<void>;
}

async function startToyServer(verifiers: Record<string, string>): Promise<ToyServer> {
  const failures: ScramAuthFailure[] = [];
  const successes: string[] = [];
  const mockSecret = randomBytes(32);
  const sockets = new Set<net.Socket>();

  async function serve(wire: Wire): Promise<void> {
    let startup: Buffer;
    for (;;) {
      startup = await wire.readUntyped();
      const code = startup.readInt32BE(0);
      if (code === 80877103 || code === 80877104)
        wire.write(Buffer.from("N")); // no SSL, no GSS
      else if (code === 196608) break;
      else throw new Error(`unexpected startup code ${code}`);
    }
    const params = cstrings(startup.subarray(4));
    const user = params[params.indexOf("user") + 1] ?? "";
    const session = new ScramServerSession(verifiers[user] ?? createMockScramVerifier(user, mockSecret), {
      user,
    });
    const fail = (failure: ScramAuthFailure) => {
      failures.push(failure);
      wire.write(
        frame(
          "E",
          cstr(`S${failure.severity}`),
          cstr(`V${failure.severity}`),
          cstr(`C${failure.sqlstate}`),
          cstr(`M${failure.message}`),
          Buffer.from([0]),
        ),
      );
      wire.end();
    };

    wire.write(frame("R", int32(10), ...session.start().map(cstr), Buffer.from([0])));
    const initial = await wire.read();
    if (initial.type !== "p") throw new Error(`expected SASLInitialResponse, got ${initial.type}`);
    const mechanismEnd = initial.body.indexOf(0);
    const mechanism = initial.body.toString("utf8", 0, mechanismEnd);
    const length = initial.body.readInt32BE(mechanismEnd + 1);
    const data =
      length < 0 ? Buffer.alloc(0) : initial.body.subarray(mechanismEnd + 5, mechanismEnd + 5 + length);
    const first = session.handleClientFirst(mechanism, data);
    if (!first.ok) return fail(first);
    wire.write(frame("R", int32(11), first.data));
    const response = await wire.read();
    if (response.type !== "p") throw new Error(`expected SASLResponse, got ${response.type}`);
    const final = session.handleClientFinal(response.body);
    if (!final.ok) return fail(final);
    successes.push(user);
    wire.write(
      Buffer.concat([
        frame("R", int32(12), final.data),
        frame("R", int32(0)),
        frame("S", cstr("server_version"), cstr("17.0")),
        frame("S", cstr("client_encoding"), cstr("UTF8")),
        frame("K", int32(1234), int32(5678)),
        frame("Z", Buffer.from("I")),
      ]),
    );
    // Enough of the query protocol for a driver to finish connecting: every query is empty.
    for (;;) {
      const message = await wire.read();
      const reply: Record<string, Buffer[]> = {
        Q: [frame("I"), frame("Z", Buffer.from("I"))],
        P: [frame("1")],
        B: [frame("2")],
        D: [frame("n")],
        E: [frame("I")],
        C: [frame("3")],
        S: [frame("Z", Buffer.from("I"))],
      };
      if (message.type === "X") return wire.end();
      for (const out of reply[message.type] ?? []) wire.write(out);
    }
  }

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    serve(new Wire(socket)).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
  const address = tcp.address();
  assert.ok(address !== null && typeof address === "object");
  return {
    port: address.port,
    failures,
    successes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        tcp.close(() => resolve());
      }),
  };
}

describe("(d) ScramServerSession authenticates real drivers", { timeout: 30_000 }, () => {
  const PASSWORD = "driver-secret";
  const NON_ASCII = "pass\u00A0w\u00F6rd";
  let toy: ToyServer;

  before(async () => {
    toy = await startToyServer({
      alice: createScramVerifier(PASSWORD),
      bob: createScramVerifier(NON_ASCII),
    });
  });

  after(() => toy?.close());

  const pgClient = (user: string, password: string) =>
    new pg.Client({
      host: "127.0.0.1",
      port: toy.port,
      user,
      password,
      database: "db",
      connectionTimeoutMillis: 5000,
    });

  const postgresJs = (user: string, password: string) =>
    postgres({
      host: "127.0.0.1",
      port: toy.port,
      user,
      password,
      database: "db",
      max: 1,
      connect_timeout: 5,
      fetch_types: false,
      onnotice: () => {},
    });

  it("pg connects with the right password (ASCII and SASLprep-mapped)", async () => {
    for (const [user, password] of [
      ["alice", PASSWORD],
      ["bob", NON_ASCII],
    ] as const) {
      const client = pgClient(user, password);
      await client.connect();
      await client.end();
    }
    assert.ok(toy.successes.includes("alice") && toy.successes.includes("bob"));
  });

  it("pg gets 28P01 for a wrong password and for an unknown user", async () => {
    for (const [user, password] of [
      ["alice", "nope"],
      ["nobody", PASSWORD],
    ] as const) {
      const client = pgClient(user, password);
      await assert.rejects(client.connect(), (error: Error & { code?: string }) => {
        assert.equal(error.code, "28P01");
        assert.equal(error.message, `password authentication failed for user "${user}"`);
        return true;
      });
    }
    assert.deepEqual(
      toy.failures.map((f) => f.reason),
      ["invalid-proof", "invalid-proof"],
    );
  });

  it("postgres.js connects with the right password and runs an (empty) query", async () => {
    const sql = postgresJs("alice", PASSWORD);
    try {
      // A simple-protocol query: the toy server answers EmptyQueryResponse. (Not sql.reserve(): with
      // fetch_types off, postgres.js 3.4 never resolves a reserve() that opens a fresh connection.)
      const result = await sql.unsafe("select 1").simple();
      assert.equal(result.length, 0);
      assert.equal(toy.successes.filter((user) => user === "alice").length, 2);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it("postgres.js gets 28P01 for a wrong password", async () => {
    const sql = postgresJs("alice", "nope");
    try {
      await assert.rejects(sql.unsafe("select 1").simple(), (error: Error & { code?: string }) => {
        assert.equal(error.code, "28P01");
        return true;
      });
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
