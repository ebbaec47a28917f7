import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { callJson } from "./http";
import { buyerToken } from "./tokens";

// Deliveries are signed with the `standardwebhooks` reference library, an implementation independent of
// ours, so the tests prove the verifier against the spec and not against itself.

export interface PaymentBody {
  payment_id: string;
  reference: string;
  status: "SUCCESS" | "FAILED";
  amount_cents: number;
  currency: string;
}

export interface DeliveryOptions {
  msgId?: string;
  date?: Date;
  secret?: string;
  /** Replaces the computed signature header (to test bad, extra or unknown-version signatures). */
  signature?: (valid: string) => string;
  /** Sends these bytes instead of the signed body (to test tampering). */
  tamper?: (signedBody: string) => string;
}

export const newPaymentId = () => `pay_${crypto.randomUUID().replaceAll("-", "")}`;
export const newMessageId = () => `msg_${crypto.randomUUID().replaceAll("-", "")}`;

export function signatureHeaders(body: string, options: DeliveryOptions = {}): Record<string, string> {
  const msgId = options.msgId ?? newMessageId();
  const date = options.date ?? new Date();
  const valid = new Webhook(options.secret ?? env.PAYMENT_WEBHOOK_SECRET ?? "").sign(msgId, date, body);
  return {
    "webhook-id": msgId,
    "webhook-timestamp": String(Math.floor(date.getTime() / 1000)),
    "webhook-signature": options.signature ? options.signature(valid) : valid,
  };
}

/** POSTs a signed delivery of `body` (an object, or raw text) to the webhook. */
export async function deliver<T = Record<string, unknown>>(
  body: PaymentBody | string,
  options: DeliveryOptions = {},
) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return callJson<T>("POST", "/payments/webhook", {
    rawBody: options.tamper ? options.tamper(text) : text,
    headers: { "content-type": "application/json", ...signatureHeaders(text, options) },
  });
}

export interface PendingOrder {
  order_id: string;
  status: string;
  amount_due_cents: number;
  currency: string;
  expires_at: string;
  token: string;
}

/** Creates a pending order through the API for `userId`. */
export async function pendingOrder(userId: string, items: { product_id: string; quantity: number }[]) {
  const token = await buyerToken(userId);
  const created = await callJson<Omit<PendingOrder, "token">>("POST", "/orders", {
    token,
    idempotencyKey: crypto.randomUUID(),
    body: { items },
  });
  if (created.status !== 201)
    throw new Error(`order failed: ${created.status} ${JSON.stringify(created.body)}`);
  return { ...created.body, token };
}

/** The SUCCESS event that pays `order` in full. */
export function paymentFor(order: PendingOrder, overrides: Partial<PaymentBody> = {}): PaymentBody {
  return {
    payment_id: newPaymentId(),
    reference: order.order_id,
    status: "SUCCESS",
    amount_cents: order.amount_due_cents,
    currency: order.currency,
    ...overrides,
  };
}
