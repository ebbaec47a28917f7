import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { configDefaults, defineConfig } from "vitest/config";
import { buildWeb } from "./scripts/build-web.mjs";

/** A fresh signing key per test run: tests read it from env, never from a checked-in file. */
function testQrSigningJwk(kid: string): string {
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  return JSON.stringify({ ...jwk, kid, alg: "EdDSA" });
}

export default defineConfig(async () => {
  // wrangler.toml serves web/dist as static assets, and the runtime refuses an assets directory that
  // does not exist: build the pages first.
  await buildWeb();
  const migrations = await readD1Migrations("./migrations");
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          // Lets tests call the Worker's queue() and scheduled() handlers through `exports.default`.
          compatibilityFlags: ["service_binding_extra_handlers"],
          bindings: {
            TEST_MIGRATIONS: migrations,
            // Tests run in workerd and cannot read files: the published development values, for the
            // production guard's test that its list matches the file.
            DEV_VARS_EXAMPLE: readFileSync(".dev.vars.example", "utf8"),
            ENVIRONMENT: "test",
            BUYER_JWT_SECRET: randomBytes(32).toString("hex"),
            OPERATOR_JWT_SECRET: randomBytes(32).toString("hex"),
            WALLET_REF_SECRET: randomBytes(32).toString("hex"),
            PAYMENT_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString("base64")}`,
            QR_SIGNING_JWK: testQrSigningJwk("test-qr-current"),
            QR_SIGNING_JWK_PREVIOUS: testQrSigningJwk("test-qr-previous"),
          },
        },
      }),
    ],
    test: {
      // The browser tests run in Node with their own config (vitest.e2e.config.ts).
      exclude: [...configDefaults.exclude, "test/e2e/**"],
      setupFiles: ["./test/setup/apply-migrations.ts"],
      // Every request logs an access line: keep the console of passing tests out of the report, and show
      // it in full for a failing one, where it helps.
      silent: "passed-only" as const,
      testTimeout: 30_000,
      hookTimeout: 30_000,
    },
  };
});
