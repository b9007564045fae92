// GraphQL-over-HTTP conformance audit of a running server, with the graphql-http
// package's auditServer (the yardstick named in shared/DESIGN.md).
//
// Usage:
//   mkdir -p /tmp/audit && cd /tmp/audit && npm install graphql-http graphql@16
//   NODE_PATH=/tmp/audit/node_modules node bench/graphql_http_audit.mjs http://127.0.0.1:8000/graphql
//
// The server's schema needs nothing in particular: the audits send `{ __typename }`
// and a few malformed requests. Prints one line per audit (ok / notice / warn / error,
// with the reason when not ok), then totals per requirement level. Exits 1 when a MUST
// audit errs, 2 on bad usage. Requires Node 18+ (global fetch).

import { createRequire } from "node:module";

const url = process.argv[2];
if (!url) {
  console.error("usage: node bench/graphql_http_audit.mjs <graphql endpoint URL>");
  process.exit(2);
}

// require (unlike import) honours NODE_PATH, so graphql-http can live outside the repository.
const require = createRequire(import.meta.url);
let auditServer;
try {
  ({ auditServer } = require("graphql-http"));
} catch (error) {
  console.error("cannot load graphql-http: npm install graphql-http graphql@16 and set NODE_PATH (" +
    error.message + ")");
  process.exit(2);
}

const results = await auditServer({ url });
const totals = {};
for (const result of results) {
  const level = result.name.split(" ", 1)[0];
  totals[level] ??= { ok: 0, notice: 0, warn: 0, error: 0 };
  totals[level][result.status] += 1;
  let line = `${result.status.padEnd(6)} ${result.id} ${result.name}`;
  if (result.status !== "ok") {
    line += `\n         reason: ${result.reason}`;
    if (result.response) {
      line += `\n         response: ${result.response.status} ${result.response.headers.get("content-type")}`;
    }
  }
  console.log(line);
}

console.log(`\n${results.length} audits against ${url}`);
for (const [level, counts] of Object.entries(totals)) {
  const total = Object.values(counts).reduce((sum, count) => sum + count, 0);
  const parts = Object.entries(counts).filter(([, count]) => count > 0).map(([status, count]) => `${count} ${status}`);
  console.log(`${level.padEnd(6)} ${String(total).padStart(3)}: ${parts.join(", ")}`);
}
process.exit(results.some((result) => result.status === "error") ? 1 : 0);
