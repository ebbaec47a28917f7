import type { Db } from "../db/client";
import type { PaymentDelivery } from "../db/payments";
import { ApiError } from "../errors";
import type { WalletObject } from "../objects/wallet";
import type { EventMessage } from "../queues/messages";
import type { WebhookOutcome } from "../types/domain";
import { settleOrderPayment } from "./settle-order-payment";
import { settleTopupPayment } from "./wallet-topups";

/** What applying a payment needs: the database and the queue its follow-up events go to. */
export interface PaymentContext {
  db: Db;
  events: Queue<EventMessage>;
  /** The wallets' objects: they post top-ups and own orders' credits. */
  wallets: DurableObjectNamespace<WalletObject>;
}

export type PaymentReferenceHandler = (
  context: PaymentContext,
  delivery: PaymentDelivery,
) => Promise<WebhookOutcome>;

/**
 * Which kind of thing a payment pays for, by the prefix of its reference: orders and wallet top-ups.
 * A Map, not an object literal, so that a reference such as `constructor_x` finds nothing.
 */
const REFERENCE_HANDLERS = new Map<string, PaymentReferenceHandler>([
  ["ord", settleOrderPayment],
  ["top", settleTopupPayment],
]);

/** Applies a verified gateway event to whatever its reference names; an unknown reference is a 404. */
export async function applyPaymentEvent(
  context: PaymentContext,
  delivery: PaymentDelivery,
): Promise<WebhookOutcome> {
  const reference = delivery.event.reference;
  const separator = reference.indexOf("_");
  const handler = separator > 0 ? REFERENCE_HANDLERS.get(reference.slice(0, separator)) : undefined;
  if (!handler) throw new ApiError("reference_not_found", "No order or top-up has this reference");
  return handler(context, delivery);
}
