import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { makeTempDir } from "../../../test-support/tmp.ts";
import { CliError } from "../src/errors.ts";
import {
  BINDING_NAME_PATTERN,
  loadManifest,
  SUPPORTED_BINDING_KINDS,
  suggestIdentifier,
  validateManifest,
} from "../src/manifest.ts";

const root = path.resolve(import.meta.dirname, "../../..");

/** The `CliError` that `fn` throws. */
async function rejection(fn: () => unknown): Promise<CliError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof CliError, String(error));
    return error;
  }
  assert.fail("expected a CliError");
}

describe("validateManifest", () => {
  it("returns the hyperdrive bindings and accepts $schema", () => {
    const manifest = validateManifest(
      {
        $schema: "./node_modules/pgbind/schema/w7s.schema.json",
        bindings: {
          hyperdrive: [
            { binding: "DB", id: "postgres-binding-id" },
            { binding: "_cache2", id: "x" },
          ],
        },
      },
      "w7s.json",
    );
    assert.deepEqual(manifest, {
      path: "w7s.json",
      bindings: [
        { binding: "DB", id: "postgres-binding-id" },
        { binding: "_cache2", id: "x" },
      ],
    });
  });

  it("accepts a manifest without hyperdrive bindings", () => {
    for (const value of [{}, { bindings: {} }, { bindings: { hyperdrive: [] } }])
      assert.deepEqual(validateManifest(value, "w7s.json").bindings, []);
  });

  it("reports every problem at once, each with its JSON path and what is valid", async () => {
    const value = {
      name: "app",
      bindings: {
        kv: [],
        hyperdrive: [
          { binding: "DB", id: "a", extra: 1 },
          { binding: "my-db", id: "b" },
          { binding: "CACHE", id: "" },
          { binding: "DB", id: "c" },
          { binding: "OTHER", id: "a" },
          { binding: "db", id: "d" },
          "DB",
          { id: 5 },
        ],
      },
    };
    const error = await rejection(() => validateManifest(value, "app/w7s.json"));
    assert.equal(error.code, "MANIFEST_INVALID");
    assert.equal(error.exitCode, 2);
    assert.equal(
      error.message,
      `app/w7s.json: invalid manifest:
  name: unknown key; allowed: $schema, bindings
  bindings.kv: unknown binding kind; pgbind supports: hyperdrive
  bindings.hyperdrive[0].extra: unknown key; allowed: binding, id
  bindings.hyperdrive[1].binding: "my-db" is not a valid identifier; use e.g. MY_DB
  bindings.hyperdrive[2].id: must be a non-empty string
  bindings.hyperdrive[3].binding: "DB" is declared twice (also at bindings.hyperdrive[0])
  bindings.hyperdrive[4].id: "a" is declared twice (also at bindings.hyperdrive[0])
  bindings.hyperdrive[5].binding: "db" and "DB" (bindings.hyperdrive[0]) both become PGBIND_DB_BINDING; rename one
  bindings.hyperdrive[6]: must be an object like {"binding": "DB", "id": "<config id>"}
  bindings.hyperdrive[7].binding: must be a non-empty string naming the binding, e.g. "DB"
  bindings.hyperdrive[7].id: must be a non-empty string`,
    );
  });

  it("explains wrong shapes at every level", async () => {
    const cases: [unknown, string][] = [
      [[], `(root): must be an object like {"bindings": {"hyperdrive": []}}`],
      [{ $schema: 1 }, "$schema: must be a string (the path or URL of w7s.schema.json)"],
      [{ bindings: [] }, `bindings: must be an object like {"hyperdrive": []}`],
      [
        { bindings: { hyperdrive: {} } },
        `bindings.hyperdrive: must be an array of {"binding": "DB", "id": "<config id>"}`,
      ],
      [{ "my key": 1 }, `["my key"]: unknown key; allowed: $schema, bindings`],
    ];
    for (const [value, problem] of cases) {
      const error = await rejection(() => validateManifest(value, "w7s.json"));
      assert.equal(error.message, `w7s.json: invalid manifest:\n  ${problem}`);
    }
  });

  it("suggests an identifier close to an invalid name", () => {
    assert.equal(suggestIdentifier("my-db"), "MY_DB");
    assert.equal(suggestIdentifier("1db"), "_1DB");
    assert.equal(suggestIdentifier("orders.db v2"), "ORDERS_DB_V2");
    assert.equal(suggestIdentifier("$db"), "_DB");
    for (const name of ["my-db", "1db", "orders.db v2", "$db", "é"])
      assert.match(suggestIdentifier(name), BINDING_NAME_PATTERN);
  });
});

describe("loadManifest", () => {
  let dir: Awaited<ReturnType<typeof makeTempDir>>;
  before(async () => {
    dir = await makeTempDir("manifest");
  });
  after(() => dir.remove());

  it("loads a file, with a byte-order mark too", async () => {
    const file = path.join(dir.path, "w7s.json");
    await writeFile(file, `\uFEFF{"bindings": {"hyperdrive": [{"binding": "DB", "id": "pg"}]}}`);
    assert.deepEqual(await loadManifest(file, "w7s.json"), {
      path: "w7s.json",
      bindings: [{ binding: "DB", id: "pg" }],
    });
  });

  it("names a missing file and suggests --manifest", async () => {
    const error = await rejection(() => loadManifest(path.join(dir.path, "nope.json"), "nope.json"));
    assert.equal(error.code, "MANIFEST_NOT_FOUND");
    assert.equal(
      error.message,
      "nope.json not found; create it, or pass --manifest <file> to use another manifest",
    );
  });

  it("reports invalid JSON with line:column", async () => {
    const file = path.join(dir.path, "broken.json");
    // The reason is V8's wording, which varies between Node versions; the position is ours.
    const cases: [string, string][] = [
      ['{\n  "bindings": {\n    "hyperdrive": [],\n  }\n}', "4:3: Expected double-quoted property name"],
      ['{"bindings": {}', "1:16: "],
      ['{"bindings": ', "1:14: unexpected end of input"],
      ['{"bindings": {"hyperdrive": [}}', "1:30: "],
      ['{"bindings": {}}\n}', "2:1: "],
    ];
    for (const [text, where] of cases) {
      await writeFile(file, text);
      const error = await rejection(() => loadManifest(file));
      assert.equal(error.code, "MANIFEST_INVALID");
      assert.ok(error.message.startsWith(`${file}: invalid JSON at ${where}`), error.message);
      assert.doesNotMatch(error.message, /position|\n/);
    }
  });
});

describe("w7s.schema.json", () => {
  const load = async (file: string) =>
    JSON.parse(await readFile(path.join(root, file), "utf8")) as {
      $schema: string;
      $id: string;
      properties: Record<string, { properties?: Record<string, unknown>; additionalProperties?: boolean }>;
      additionalProperties: boolean;
      $defs: {
        hyperdriveBinding: {
          properties: { binding: { pattern: string }; id: { minLength: number } };
          required: string[];
          additionalProperties: boolean;
        };
      };
    };

  it("describes the same shape the validator accepts", async () => {
    const schema = await load("packages/cli/schema/w7s.schema.json");
    assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
    assert.ok(schema.$id);
    assert.deepEqual(Object.keys(schema.properties), ["$schema", "bindings"]);
    assert.equal(schema.additionalProperties, false);
    const bindings = schema.properties.bindings;
    assert.deepEqual(Object.keys(bindings?.properties ?? {}), [...SUPPORTED_BINDING_KINDS]);
    assert.equal(bindings?.additionalProperties, false);
    const entry = schema.$defs.hyperdriveBinding;
    assert.deepEqual(Object.keys(entry.properties), ["binding", "id"]);
    assert.deepEqual(entry.required, ["binding", "id"]);
    assert.equal(entry.additionalProperties, false);
    assert.equal(entry.properties.binding.pattern, BINDING_NAME_PATTERN.source);
    assert.equal(entry.properties.id.minLength, 1);
  });

  it("ships with the package at the path the README gives", async () => {
    const pkg = await load("packages/cli/package.json");
    assert.ok((pkg as unknown as { files: string[] }).files.includes("schema"));
    const linked = await load("node_modules/pgbind/schema/w7s.schema.json");
    assert.equal(linked.$id, (await load("packages/cli/schema/w7s.schema.json")).$id);
  });
});
