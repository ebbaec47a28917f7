// Standard Webhooks (https://www.standardwebhooks.com): HMAC-SHA256 over `${id}.${timestamp}.${body}`,
// keyed with the base64 part of a `whsec_…` secret, sent as space-separated `v1,<base64>` entries.

const SECRET_PREFIX = "whsec_";
const SIGNATURE_VERSION = "v1";
/** Deliveries older than this, or dated further ahead than this (clock skew), are refused as replays. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;
/** Bounds the work one request can ask for: senders list one signature per active secret, a handful. */
const MAX_SIGNATURES_CHECKED = 8;
const MAX_WEBHOOK_ID_LENGTH = 255;
const TIMESTAMP_PATTERN = /^\d{1,12}$/;
/** An HMAC-SHA256 tag is 32 bytes; anything else cannot match and is not worth a verify call. */
const HMAC_SHA256_BYTES = 32;

export interface WebhookHeaders {
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

// Imported once per isolate; keyed by the secret so a rotated secret gets its own key.
const hmacKeys = new Map<string, Promise<CryptoKey>>();

function decodeBase64(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    const raw = secret.startsWith(SECRET_PREFIX)
      ? decodeBase64(secret.slice(SECRET_PREFIX.length))
      : undefined;
    if (!raw || raw.length === 0) throw new Error("PAYMENT_WEBHOOK_SECRET must be whsec_<base64 key>");
    key = crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    hmacKeys.set(secret, key);
  }
  return key;
}

/** A delivery's signature checked: its webhook id, or which check failed (never anything about the secret). */
export type WebhookSignatureVerification = { ok: true; webhookId: string } | { ok: false; detail: string };

function invalid(detail: string): WebhookSignatureVerification {
  return { ok: false, detail };
}

/** The `v1` signatures in a `webhook-signature` header, decoded; entries of other versions are skipped. */
function v1Signatures(header: string): Uint8Array[] {
  const signatures: Uint8Array[] = [];
  for (const entry of header.split(" ")) {
    const separator = entry.indexOf(",");
    if (separator < 0 || entry.slice(0, separator) !== SIGNATURE_VERSION) continue;
    const bytes = decodeBase64(entry.slice(separator + 1));
    if (bytes?.length === HMAC_SHA256_BYTES) signatures.push(bytes);
    if (signatures.length === MAX_SIGNATURES_CHECKED) break;
  }
  return signatures;
}

/**
 * Verifies a delivery against the raw request bytes, before anything parses them. Any one matching `v1`
 * signature suffices (the sender signs with old and new secrets during a rotation). Every failure is the
 * same refusal (the route answers 401 `signature_invalid`); its detail says which check failed, never
 * anything about the secret. Verified, the answer is the webhook id, the delivery's deduplication key.
 */
export async function verifyWebhookSignature(
  secret: string,
  headers: WebhookHeaders,
  body: Uint8Array,
  now: Date,
): Promise<WebhookSignatureVerification> {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature)
    return invalid("webhook-id, webhook-timestamp and webhook-signature are required");
  if (id.length > MAX_WEBHOOK_ID_LENGTH) return invalid("webhook-id is too long");
  if (!TIMESTAMP_PATTERN.test(timestamp)) return invalid("webhook-timestamp must be Unix seconds");
  const skewSeconds = Math.floor(now.getTime() / 1000) - Number(timestamp);
  if (Math.abs(skewSeconds) > WEBHOOK_TOLERANCE_SECONDS) {
    return invalid(`webhook-timestamp is more than ${WEBHOOK_TOLERANCE_SECONDS} s from now`);
  }

  const key = await hmacKey(secret);
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix);
  signed.set(body, prefix.length);
  for (const candidate of v1Signatures(signature)) {
    // crypto.subtle.verify compares in constant time; a sign-and-=== comparison would leak timing.
    if (await crypto.subtle.verify("HMAC", key, candidate, signed)) return { ok: true, webhookId: id };
  }
  return invalid("No matching v1 signature");
}
