import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { ControlError, loadMasterKey, MASTER_KEY_ENV, parseMasterKey, SecretBox } from "../src/index.ts";

const PLAINTEXT = "origin-pässword-🔑";

test("sealed values open with the same key and context only", () => {
  const key = randomBytes(32);
  const box = new SecretBox(key);
  const sealed = box.seal(PLAINTEXT, "pgb_a");
  assert.equal(sealed[0], 1, "format version byte");
  assert.ok(!sealed.toString("latin1").includes("origin-p"));
  assert.notDeepEqual(box.seal(PLAINTEXT, "pgb_a"), sealed, "a random IV each time");
  assert.equal(box.open(sealed, "pgb_a", "x"), PLAINTEXT);

  const expectMismatch = (fn: () => unknown) =>
    assert.throws(fn, (error: unknown) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, "MASTER_KEY_MISMATCH");
      assert.ok(!error.message.includes(PLAINTEXT));
      assert.ok(!error.message.includes(key.toString("base64")));
      assert.ok(!error.message.includes(sealed.toString("base64")));
      return true;
    });
  expectMismatch(() => box.open(sealed, "pgb_b", "x"));
  expectMismatch(() => new SecretBox(randomBytes(32)).open(sealed, "pgb_a", "x"));
  const tampered = Buffer.from(sealed);
  tampered[tampered.length - 1] = (tampered.at(-1) ?? 0) ^ 1;
  expectMismatch(() => box.open(tampered, "pgb_a", "x"));
  expectMismatch(() => box.open(Buffer.of(9, 1, 2), "pgb_a", "x"));
});

test("master keys: base64, base64url and hex; a wrong length names the variable and what is valid", () => {
  const key = randomBytes(32);
  assert.deepEqual(parseMasterKey(key.toString("base64"), MASTER_KEY_ENV), key);
  assert.deepEqual(parseMasterKey(key.toString("base64url"), MASTER_KEY_ENV), key);
  assert.deepEqual(parseMasterKey(`${key.toString("hex")}\n`, MASTER_KEY_ENV), key);
  const short = randomBytes(16).toString("base64");
  assert.throws(
    () => parseMasterKey(short, MASTER_KEY_ENV),
    (error: unknown) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, "MASTER_KEY_INVALID");
      assert.match(error.message, /PGBIND_MASTER_KEY/);
      assert.match(error.message, /32 bytes.*base64.*64 hex/);
      assert.ok(!error.message.includes(short));
      return true;
    },
  );
  assert.throws(() => new SecretBox(randomBytes(31)), { code: "MASTER_KEY_INVALID" });
});

test("loadMasterKey: option, then environment, then the key file", async () => {
  const dir = await makeTempDir("control-key");
  try {
    const option = randomBytes(32);
    const env = { [MASTER_KEY_ENV]: randomBytes(32).toString("hex") };
    assert.deepEqual(await loadMasterKey({ masterKey: option, env, dataDir: dir.path }), option);
    assert.deepEqual(
      await loadMasterKey({ env, dataDir: dir.path }),
      Buffer.from(env[MASTER_KEY_ENV] as string, "hex"),
    );
    await assert.rejects(loadMasterKey({ env: { [MASTER_KEY_ENV]: "short" } }), {
      code: "MASTER_KEY_INVALID",
    });
    await assert.rejects(loadMasterKey({ env: {}, dataDir: dir.path }), (error: unknown) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, "MASTER_KEY_MISSING");
      assert.match(error.message, /PGBIND_MASTER_KEY/);
      return true;
    });
  } finally {
    await dir.remove();
  }
});

test("the key file is created once with mode 0600, shared by concurrent starts, and refused when others can read it", async () => {
  const dir = await makeTempDir("control-keyfile");
  try {
    const starts = await Promise.all(
      Array.from({ length: 4 }, () => loadMasterKey({ env: {}, dataDir: dir.path, create: true })),
    );
    for (const key of starts) assert.deepEqual(key, starts[0]);
    const file = path.join(dir.path, "master.key");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await loadMasterKey({ env: {}, dataDir: dir.path }), starts[0]);

    await chmod(file, 0o644);
    await assert.rejects(loadMasterKey({ env: {}, dataDir: dir.path }), (error: unknown) => {
      assert.ok(error instanceof ControlError);
      assert.equal(error.code, "MASTER_KEY_INVALID");
      assert.match(error.message, /group or others.*0644.*chmod 600/);
      return true;
    });
    await chmod(file, 0o600);
    const content = await readFile(file, "utf8");
    await writeFile(file, "not a key\n");
    await assert.rejects(loadMasterKey({ env: {}, dataDir: dir.path }), { code: "MASTER_KEY_INVALID" });
    await writeFile(file, content);
  } finally {
    await dir.remove();
  }
});
