import type { Config } from "../env";

// A POS till must recognise "the same wallet again" without learning who owns it. It gets an opaque
// reference: an HMAC of (event, user id) under a key derived from WALLET_REF_SECRET. Scoped per event, so
// two events' tills cannot join their customers; stable within an event, so a till can match a refund to
// a sale. The secret is its own, not the operator tokens': rotating that one (after a leak, or routinely)
// must not change every wallet's reference mid-event, and rotating this one changes only the references.
// The key is derived with HKDF and a purpose label, so the raw secret is never used as a MAC key.

const WALLET_REF_KEY_INFO = "passes-edge/wallet-ref/v1";
/** Bytes of the HMAC kept: 120 bits, far beyond any collision concern for one event's wallets. */
const WALLET_REF_BYTES = 15;
const BASE32_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

const derivedKeys = new Map<string, Promise<CryptoKey>>();

function walletRefKey(secret: string): Promise<CryptoKey> {
  let key = derivedKeys.get(secret);
  if (!key) {
    key = crypto.subtle
      .importKey("raw", new TextEncoder().encode(secret), "HKDF", false, ["deriveKey"])
      .then((base) =>
        crypto.subtle.deriveKey(
          {
            name: "HKDF",
            hash: "SHA-256",
            salt: new Uint8Array(0),
            info: new TextEncoder().encode(WALLET_REF_KEY_INFO),
          },
          base,
          { name: "HMAC", hash: "SHA-256", length: 256 },
          false,
          ["sign"],
        ),
      );
    derivedKeys.set(secret, key);
    key.catch(() => derivedKeys.delete(secret));
  }
  return key;
}

function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** The opaque reference a till at `eventId` sees for `userId`'s wallet: `wal_` + 24 base32 symbols. */
export async function walletRef(config: Config, eventId: string, userId: string): Promise<string> {
  const key = await walletRefKey(config.walletRefSecret);
  const mac = await crypto.subtle.sign(
    "HMAC",
    key,
    new TextEncoder().encode(JSON.stringify([eventId, userId])),
  );
  return `wal_${base32(new Uint8Array(mac).subarray(0, WALLET_REF_BYTES))}`;
}
