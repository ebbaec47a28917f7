import { generateKeyPairSync, randomBytes } from "node:crypto";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/** A fresh signing key per test run: tests read it from env, never from a checked-in file. */
function testQrSigningJwk(kid: string): string {
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
  return JSON.stringify({ ...jwk, kid, alg: "EdDSA" });
}

export default defineConfig(async () => {
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
            ENVIRONMENT: "test",
            BUYER_JWT_SECRET: randomBytes(32).toString("hex"),
            OPERATOR_JWT_SECRET: randomBytes(32).toString("hex"),
            PAYMENT_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString("base64")}`,
            QR_SIGNING_JWK: testQrSigningJwk("test-qr-current"),
            QR_SIGNING_JWK_PREVIOUS: testQrSigningJwk("test-qr-previous"),
          },
        },
      }),
    ],
    test: {
      setupFiles: ["./test/setup/apply-migrations.ts"],
      testTimeout: 30_000,
      hookTimeout: 30_000,
    },
  };
});
