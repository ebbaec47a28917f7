import type { Db } from "../db/client";
import type { PaymentDelivery } from "../db/payments";
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

/** What a payment pays for. */
export type PaymentSubject = "order" | "topup";

/**
 * A delivery that changed nothing: its reference names nothing payable (`paying` says what was looked
 * for, when the reference's prefix said), or it pays another amount or currency than is due (recorded
 * for review before this is answered).
 */
export type PaymentRefusal =
  | { ok: false; code: "reference_not_found"; paying: PaymentSubject | undefined }
  | {
      ok: false;
      code: "amount_mismatch";
      paying: PaymentSubject;
      expectedAmountCents: number;
      expectedCurrency: string;
    };

export type PaymentApplication = { ok: true; outcome: WebhookOutcome } | PaymentRefusal;

export type PaymentReferenceHandler = (
  context: PaymentContext,
  delivery: PaymentDelivery,
) => Promise<PaymentApplication>;

/**
 * Which kind of thing a payment pays for, by the prefix of its reference: orders and wallet top-ups.
 * A Map, not an object literal, so that a reference such as `constructor_x` finds nothing.
 */
const REFERENCE_HANDLERS = new Map<string, PaymentReferenceHandler>([
  ["ord", settleOrderPayment],
  ["top", settleTopupPayment],
]);

/** Applies a verified gateway event to whatever its reference names, or refuses it (see PaymentRefusal). */
export async function applyPaymentEvent(
  context: PaymentContext,
  delivery: PaymentDelivery,
): Promise<PaymentApplication> {
  const reference = delivery.event.reference;
  const separator = reference.indexOf("_");
  const handler = separator > 0 ? REFERENCE_HANDLERS.get(reference.slice(0, separator)) : undefined;
  if (!handler) return { ok: false, code: "reference_not_found", paying: undefined };
  return handler(context, delivery);
}
