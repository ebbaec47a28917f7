// The secrets of `.dev.vars.example` are published with the source, so anyone can sign operator and buyer
// tokens, QR codes and payment webhooks with them. A production deployment that runs with one (a copied
// .dev.vars, a forgotten `wrangler secret put`) has no authentication at all, and refuses to serve.
// test/config/published-dev-secrets.test.ts proves that this list and the file say the same.

/** Every variable that holds a secret; the production guard checks each one that is set. */
export const SECRET_VARIABLES = [
  "BUYER_JWT_SECRET",
  "OPERATOR_JWT_SECRET",
  "WALLET_REF_SECRET",
  "PAYMENT_WEBHOOK_SECRET",
  "QR_SIGNING_JWK",
  "QR_SIGNING_JWK_PREVIOUS",
] as const;

export type SecretVariable = (typeof SECRET_VARIABLES)[number];

/** The secret values of `.dev.vars.example`, verbatim. They are public: keeping them here reveals nothing. */
export const PUBLISHED_DEV_SECRETS: Readonly<Partial<Record<SecretVariable, string>>> = {
  BUYER_JWT_SECRET: "dev-buyer-secret-change-me-0123456789abcdef",
  OPERATOR_JWT_SECRET: "dev-operator-secret-change-me-0123456789abcdef",
  WALLET_REF_SECRET: "dev-wallet-ref-secret-change-me-0123456789abcdef",
  PAYMENT_WEBHOOK_SECRET: "whsec_aa5rxXIQ47LVGOfmEDGQ1+I3KJdANetk",
  QR_SIGNING_JWK:
    '{"crv":"Ed25519","d":"bQcdAvIwhTPhDwDMqryO9Be378iHQBdaGMHIpABvPYA","x":"mFUEiD4muy5Gi_5hZ3fAc-RaatZUXbxCuyAOZdiNVu8","kty":"OKP","kid":"dev-qr-1","alg":"EdDSA"}',
};

/**
 * What identifies a secret's key material: for a private JWK its `d`, so the published key stays refused
 * under another `kid` or with its members reordered; for anything else the text without surrounding
 * whitespace (a pasted value often ends in a newline).
 */
export function secretFingerprint(value: string): string {
  const text = value.trim();
  if (text.startsWith("{")) {
    try {
      const jwk = JSON.parse(text) as { d?: unknown };
      if (typeof jwk.d === "string" && jwk.d !== "") return `jwk-d:${jwk.d}`;
    } catch {
      // Not JSON: compared as text, and refused later by the key import if it is meant to be a JWK.
    }
  }
  return text;
}

const publishedFingerprints = new Set(Object.values(PUBLISHED_DEV_SECRETS).map(secretFingerprint));

/**
 * The names of the secret variables whose value is any published development value (a dev value moved to
 * another variable is just as public). Names only: the values never leave this function.
 */
export function variablesWithPublishedSecrets(
  values: Readonly<Partial<Record<SecretVariable, string | undefined>>>,
): SecretVariable[] {
  return SECRET_VARIABLES.filter((name) => {
    const value = values[name];
    return value !== undefined && value.trim() !== "" && publishedFingerprints.has(secretFingerprint(value));
  });
}
