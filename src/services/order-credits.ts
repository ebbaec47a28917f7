import pMap from "p-map";
import type { Db } from "../db/client";
import { unpaidCreditedOrders } from "../db/orders";
import type { OrderCreditsAction, OrderCreditsOutcome, WalletObject } from "../objects/wallet";
import { walletObject } from "./wallet-object";

// An order's wallet credits, as the wallet's object keeps them: a pending transfer keyed by the order,
// made before the order's batch and posted or voided once the order settles. No order batch writes the
// wallet. Every call after the batch is idempotent, and each has a backstop: a pending transfer nobody
// resolved is looked at at its timeout, when the object asks D1 how the order ended and posts (paid) or
// voids (expired, failed, never created) it. So a lost call here delays a release; it never loses money.

type Wallets = DurableObjectNamespace<WalletObject>;

export interface CreditedOrder {
  id: string;
  userId: string;
  creditsAppliedCents: number;
}

/** The order was paid: its credits are taken. */
export function postOrderCredits(wallets: Wallets, order: CreditedOrder): Promise<void> {
  return resolve(wallets, order, "post");
}

/** The order will never be paid (failed, expired, cancelled, or its batch rolled back): credits return. */
export function releaseOrderCredits(wallets: Wallets, order: CreditedOrder): Promise<void> {
  return resolve(wallets, order, "void");
}

/** Wallet objects asked at once when a sweep releases many orders' credits. */
const RELEASES_AT_ONCE = 5;

/**
 * After the expiry sweep's batch: the credits of those orders that ended unpaid come back now rather than
 * at their transfers' timeout. Reads D1 first, so an order a racing payment settled PAID is never voided
 * (only terminal unpaid states are).
 */
export async function releaseCreditsOfUnpaidOrders(
  wallets: Wallets,
  db: Db,
  orderIds: string[],
): Promise<void> {
  const ended = await unpaidCreditedOrders(db, orderIds);
  await pMap(ended, (order) => releaseOrderCredits(wallets, order), { concurrency: RELEASES_AT_ONCE });
}

async function resolve(wallets: Wallets, order: CreditedOrder, action: OrderCreditsAction): Promise<void> {
  if (order.creditsAppliedCents === 0) return;
  const wallet = walletObject(wallets, order.userId);
  let outcome: OrderCreditsOutcome;
  try {
    outcome = await wallet.resolveOrderCredits(order.userId, order.id, action);
  } catch (error) {
    log("warn", "order credits not resolved now; the wallet resolves them at their timeout", order, error);
    return;
  }
  // Posting a voided transfer would mean D1 paid an order after the object saw it end unpaid, which the
  // order's state machine rules out: worth a page, never a silent fix.
  if (action === "post" && !outcome.ok && outcome.code === "voided") {
    log("error", "paid order's credits were already voided", order);
  }
}

function log(level: "warn" | "error", msg: string, order: CreditedOrder, error?: unknown): void {
  console.error(
    JSON.stringify({
      level,
      msg,
      order_id: order.id,
      user_id: order.userId,
      ...(error !== undefined && { error: String(error) }),
    }),
  );
}
