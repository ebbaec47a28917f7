// `npm run keys`: prints a fresh Ed25519 private JWK for signing QR tokens, ready for
// `wrangler secret put QR_SIGNING_JWK`. To rotate, first move the current value to QR_SIGNING_JWK_PREVIOUS
// (its public half stays in the JWKS so tokens already handed out still verify), then set the new one.
import { generateKeyPairSync, randomBytes } from "node:crypto";

const KID_RANDOM_BYTES = 4;
const today = new Date().toISOString().slice(0, 10);
const kid = `qr-${today}-${randomBytes(KID_RANDOM_BYTES).toString("hex")}`;
const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" });
console.log(JSON.stringify({ ...jwk, kid, alg: "EdDSA" }));
