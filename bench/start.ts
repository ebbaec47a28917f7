// Starts the Worker in-process with Miniflare (no `wrangler dev` proxy in the path), with the product's
// bindings as wrangler.toml declares them plus the bench floor object, and a migrated, seeded D1.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readD1Migrations } from "@cloudflare/vitest-plugin";
import { build } from "esbuild";
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from "miniflare";
import { seedSql } from "../scripts/seed.mjs";

export interface BenchSecrets {
  BUYER_JWT_SECRET: string;
  OPERATOR_JWT_SECRET: string;
  WALLET_REF_SECRET: string;
  PAYMENT_WEBHOOK_SECRET: string;
  QR_SIGNING_JWK: string;
}

export const BENCH_VARS = {
  ENVIRONMENT: "test",
  CURRENCY: "EUR",
  ORDER_HOLD_SECONDS: "900",
  BUYER_JWT_ISSUER: "https://id.bench.local/",
  BUYER_JWT_AUDIENCE: "passes-api",
  SERVICE_ISSUER: "https://passes.bench.local/",
  TOPUP_MIN_CENTS: "500",
  TOPUP_MAX_CENTS: "50000",
  PUBLIC_BASE_URL: "http://localhost:8787",
};

function freshSecrets(): BenchSecrets {
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  return {
    BUYER_JWT_SECRET: randomBytes(32).toString("hex"),
    OPERATOR_JWT_SECRET: randomBytes(32).toString("hex"),
    WALLET_REF_SECRET: randomBytes(32).toString("hex"),
    PAYMENT_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString("base64")}`,
    QR_SIGNING_JWK: JSON.stringify({ ...jwk, kid: "bench-qr", alg: "EdDSA" }),
  };
}

async function bundle(outdir: string): Promise<string> {
  const outfile = join(outdir, "worker.js");
  await build({
    entryPoints: ["bench/bench-worker.ts"],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2024",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["cloudflare:*", "node:*"],
    outfile,
    logLevel: "error",
  });
  return outfile;
}

export async function startBenchWorker(options: { inspectorPort?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "passes-bench-"));
  // workerd resolves modules relative to the working directory, so the bundle lives inside the project.
  const scriptPath = await bundle(join(".wrangler", "bench"));
  const secrets = freshSecrets();
  // Miniflare 5 takes per-worker options; the converter accepts the long-standing v4 shape used here.
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      // The Worker's own logs (receipts, warnings) would drown the report.
      log: new Log(LogLevel.NONE),
      handleStructuredLogs: () => undefined,
      host: "127.0.0.1",
      ...(options.inspectorPort !== undefined && { inspectorPort: options.inspectorPort }),
      port: 0,
      modules: true,
      scriptPath,
      compatibilityDate: "2026-11-01",
      compatibilityFlags: ["nodejs_compat"],
      bindings: { ...BENCH_VARS, ...secrets },
      d1Databases: { DB: "bench-db" },
      d1Persist: join(dir, "d1"),
      durableObjects: {
        TICKETS: { className: "TicketObject", useSQLite: true },
        WALLETS: { className: "WalletObject", useSQLite: true },
        BENCH_FLOOR: { className: "BenchFloorObject", useSQLite: true },
      },
      durableObjectsPersist: join(dir, "do"),
      queueProducers: { EVENTS: "passes-events" },
      queueConsumers: { "passes-events": { maxBatchSize: 50, maxBatchTimeout: 1, maxRetries: 5 } },
      r2Buckets: ["EXPORTS"],
      r2Persist: join(dir, "r2"),
    }),
  );
  const url = await mf.ready;
  const db = await mf.getD1Database("DB");
  // The same splitter the test setup uses, so triggers' inner semicolons are handled as wrangler does.
  for (const migration of await readD1Migrations("migrations")) {
    for (const query of migration.queries) await db.prepare(query).run();
  }
  await db.exec("CREATE TABLE IF NOT EXISTS bench_counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)");
  await db.exec(
    "INSERT OR IGNORE INTO bench_counter (id, n) WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 99) SELECT i, 0 FROM s",
  );
  for (const statement of seedSql().split("\n").filter(Boolean)) await db.prepare(statement).run();
  return { mf, url: url.toString().replace(/\/$/, ""), db, secrets, dir };
}
