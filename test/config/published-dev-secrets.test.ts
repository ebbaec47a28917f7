import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import {
  PUBLISHED_DEV_SECRETS,
  SECRET_VARIABLES,
  variablesWithPublishedSecrets,
} from "../../src/config/published-dev-secrets";

// The production guard is only as good as its list: these tests hold it to .dev.vars.example itself,
// whose text vitest.config.ts passes in (workerd cannot read files).

/** Variables of the example file that are not secrets. Anything else in it must be on the guard's list. */
const NOT_SECRETS = new Set(["ENVIRONMENT"]);

/** KEY=VALUE lines, as wrangler reads .dev.vars (the same rule as test/e2e/support/app.ts). */
function devVars(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = line.match(/^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/);
    if (match?.[1] && match[2] !== undefined) vars[match[1]] = match[2].replace(/^"(.*)"$/, "$1");
  }
  return vars;
}

const example = devVars(env.DEV_VARS_EXAMPLE);
const DEV_QR_JWK = PUBLISHED_DEV_SECRETS.QR_SIGNING_JWK ?? "";

describe("the published development secrets", () => {
  it("are exactly the secrets of .dev.vars.example, value for value", ({ expect }) => {
    const secretsInFile = Object.fromEntries(
      Object.entries(example).filter(([name]) => !NOT_SECRETS.has(name)),
    );
    expect(Object.keys(secretsInFile).length).toBeGreaterThan(0);
    expect(PUBLISHED_DEV_SECRETS).toEqual(secretsInFile);
    for (const name of Object.keys(secretsInFile)) {
      expect(SECRET_VARIABLES as readonly string[]).toContain(name);
    }
  });

  it("are each recognised by the guard, in any secret variable", ({ expect }) => {
    for (const [name, value] of Object.entries(example)) {
      if (NOT_SECRETS.has(name)) continue;
      expect(variablesWithPublishedSecrets({ OPERATOR_JWT_SECRET: value })).toEqual(["OPERATOR_JWT_SECRET"]);
    }
  });

  it("are recognised with surrounding whitespace, and the dev key under another kid or layout", ({
    expect,
  }) => {
    const jwk = JSON.parse(DEV_QR_JWK) as Record<string, string>;
    const renamed = JSON.stringify({ kid: "prod-qr-7", d: jwk.d, x: jwk.x, crv: "Ed25519", kty: "OKP" });
    expect(
      variablesWithPublishedSecrets({
        BUYER_JWT_SECRET: `${PUBLISHED_DEV_SECRETS.BUYER_JWT_SECRET}\n`,
        QR_SIGNING_JWK: renamed,
        QR_SIGNING_JWK_PREVIOUS: JSON.stringify(jwk, null, 2),
      }),
    ).toEqual(["BUYER_JWT_SECRET", "QR_SIGNING_JWK", "QR_SIGNING_JWK_PREVIOUS"]);
  });

  it("leave real secrets, empty and unset variables alone", ({ expect }) => {
    expect(
      variablesWithPublishedSecrets({
        BUYER_JWT_SECRET: env.BUYER_JWT_SECRET,
        OPERATOR_JWT_SECRET: env.OPERATOR_JWT_SECRET,
        WALLET_REF_SECRET: env.WALLET_REF_SECRET,
        PAYMENT_WEBHOOK_SECRET: env.PAYMENT_WEBHOOK_SECRET,
        QR_SIGNING_JWK: env.QR_SIGNING_JWK,
        QR_SIGNING_JWK_PREVIOUS: "",
      }),
    ).toEqual([]);
  });
});
