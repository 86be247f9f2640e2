// The gateway's main suite again, on Node's own sockets: the path taken where the native socket layer
// is not built (no C compiler) or is turned off with PGBIND_GATEWAY_SOCKETS=node.
import assert from "node:assert/strict";
import { it } from "node:test";
import { nativeSocketLayer } from "../src/native-sockets.ts";

process.env.PGBIND_GATEWAY_SOCKETS = "node";

it("PGBIND_GATEWAY_SOCKETS=node turns the native socket layer off", () => {
  assert.equal(nativeSocketLayer(), undefined);
});

await import("./gateway.test.ts");
