import { rememberBuyerEmailStatement } from "../db/buyer-contacts";
import { availableUnits, findProductsByIds, inventory } from "../db/catalog";
import type { Db, Statement } from "../db/client";
import { atomically, isConstraintError } from "../db/client";
import {
  createOrderStatements,
  EXPIRY_SWEEP_BATCH,
  expireOrders,
  findLapsedOrderIds,
  findOrderByIdempotencyKey,
  findOrderWithItems,
  isDuplicateOrderKey,
  isInventoryExceeded,
  type LapsedHolders,
  settleOrderStatements,
  toOrder,
} from "../db/orders";
import { type OutboxEntry, outboxStatement, publishOutboxEntry } from "../db/outbox";
import { holdPendingUnitsStatement, isPendingCapExceeded, pendingUnitsOf } from "../db/pending-units";
import { issueTicketsStatements } from "../db/tickets";
import { ledgerActors, planOrderCredits } from "../domain/ledger";
import { orderTotalCents, type PricedLine, type RequestedItem } from "../domain/orders";
import type { IdempotencyClaim } from "../http/idempotency";
import { newId } from "../ids";
import type { WalletObject } from "../objects/wallet";
import type { EventMessage } from "../queues/messages";
import type { Order } from "../types/domain";
import { productsForPricing } from "./catalog-cache";
import { postOrderCredits, releaseOrderCredits } from "./order-credits";
import { walletObject } from "./wallet-object";

export interface ReserveOrderInput {
  userId: string;
  idempotencyKey: string;
  items: RequestedItem[];
  /** Wallet credit to pay with: part of the total (held until the card pays) or all of it (paid now). */
  creditsCents?: number;
  currency: string;
  holdSeconds: number;
  /** Units the buyer may hold in unpaid orders, this one included (`MAX_PENDING_UNITS_PER_BUYER`). */
  maxPendingUnits: number;
  claim: IdempotencyClaim;
  /** Where `order.paid` goes when credits pay the whole order at once. */
  events: Queue<EventMessage>;
  /** The wallets' objects, which set the order's credits aside before its batch. */
  wallets: DurableObjectNamespace<WalletObject>;
  /** The address the buyer's token carried: remembered with the order, for its receipt. */
  buyerEmail?: string;
}

/**
 * Lapsed orders (not yet swept) that one refused order may expire before its single retry: one expiry
 * batch, so a refusal costs at most two reads and two batches more.
 */
const LAPSED_RELEASE_LIMIT = EXPIRY_SWEEP_BATCH;

/**
 * Why an order was not created (nothing of it was written). `idempotency_in_progress`: the key made an
 * order that cannot be read back yet.
 */
export type OrderRefusal =
  | { ok: false; code: "unknown_product" | "product_inactive"; productId: string }
  | { ok: false; code: "credits_exceed_total"; totalCents: number }
  | { ok: false; code: "insufficient_funds"; balanceCents: number; availableCents: number }
  | {
      ok: false;
      code: "too_many_pending";
      pendingUnits: number;
      requestedUnits: number;
      maxPendingUnits: number;
    }
  | { ok: false; code: "sold_out"; productId: string; available: number }
  | { ok: false; code: "idempotency_in_progress" };

export type ReserveOrderResult = { ok: true; order: Order } | OrderRefusal;

/**
 * Prices the items at catalog prices (at most CATALOG_CACHE_MS old) and creates a pending order with its inventory reserved,
 * in one batch that also stores the idempotent response. A product that does not exist or is not for
 * sale is refused before anything is written. Not enough stock → `sold_out` naming the first
 * product that is short, with what is left of it. The same batch adds the order's units to the buyer's
 * pending count, whose CHECK refuses more than `maxPendingUnits` → `too_many_pending`. Before either
 * answer, lapsed orders that hold the stock or count against the cap (the sweep has not reached them yet)
 * are expired and the batch is tried once more: a lapsed hold never keeps anyone from buying.
 *
 * With `creditsCents`, the wallet's object first sets that much aside as a pending transfer keyed by the
 * order (more than available → `insufficient_funds` with the balance, and nothing is written). Paid in
 * part, the transfer waits for the card payment's settlement; paid in full, the batch also settles the
 * order PAID and issues its tickets, and the transfer is posted right after. A batch that certainly rolled
 * back voids it; one whose outcome is unknown leaves it to the transfer's timeout (./order-credits.ts).
 */
export async function reserveOrder(db: Db, input: ReserveOrderInput): Promise<ReserveOrderResult> {
  const now = new Date();
  const rows = await productsForPricing(
    db,
    input.items.map((item) => item.product_id),
    now.getTime(),
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  const lines: PricedLine[] = [];
  for (const item of input.items) {
    const product = byId.get(item.product_id);
    if (!product) return { ok: false, code: "unknown_product", productId: item.product_id };
    if (!product.active) return { ok: false, code: "product_inactive", productId: item.product_id };
    if (product.currency !== input.currency)
      throw new Error(`Product ${product.id} is priced in ${product.currency}`);
    lines.push({
      product_id: item.product_id,
      quantity: item.quantity,
      unit_price_cents: product.priceCents,
    });
  }

  // No stock check here: the rows may come from the pricing cache. The batch's CHECK is the judge, and
  // a short product costs one failed batch and one read to name it.
  const totalCents = orderTotalCents(lines);
  const credits = planOrderCredits(totalCents, input.creditsCents);
  if (credits.kind === "exceeds_total") return { ok: false, code: "credits_exceed_total", totalCents };
  const created = createOrderStatements(db, {
    id: newId("ord"),
    userId: input.userId,
    idempotencyKey: input.idempotencyKey,
    lines,
    totalCents,
    creditsAppliedCents: credits.appliedCents,
    currency: input.currency,
    now,
    holdSeconds: input.holdSeconds,
  });
  let row = created.row;
  const statements: Statement[] = [...created.statements];
  if (input.buyerEmail) statements.push(rememberBuyerEmailStatement(db, input.userId, input.buyerEmail, now));
  const units = lines.reduce((sum, line) => sum + line.quantity, 0);
  if (credits.kind !== "full") {
    // An order paid in full at once is never pending: only the others count against the cap.
    statements.push(
      holdPendingUnitsStatement(db, { userId: input.userId, units, maxUnits: input.maxPendingUnits, now }),
    );
  }
  let paid: OutboxEntry | undefined;
  if (credits.kind === "full") {
    paid = {
      id: `order.paid:${row.id}`,
      message: { type: "order.paid", order_id: row.id, user_id: row.userId, paid_at: now.toISOString() },
    };
    const tickets = issueTicketsStatements(db, {
      orderId: row.id,
      userId: row.userId,
      lines: lines.map((line) => ({ productId: line.product_id, quantity: line.quantity })),
      now,
    });
    statements.push(
      ...settleOrderStatements(db, row.id, "PAID", now),
      ...lines.map((line) => inventory.commit(db, line.product_id, line.quantity, now)),
      ...tickets.statements,
      outboxStatement(db, paid, now),
    );
    row = { ...row, status: "PAID" };
  }
  const order = toOrder(
    row,
    lines.map((line) => ({
      orderId: row.id,
      productId: line.product_id,
      quantity: line.quantity,
      unitPriceCents: line.unit_price_cents,
    })),
  );

  if (credits.kind !== "none") {
    const held = await walletObject(input.wallets, input.userId).holdOrderCredits({
      userId: input.userId,
      orderId: row.id,
      amountCents: credits.appliedCents,
      currency: input.currency,
      orderExpiresAt: created.row.expiresAt,
      // Paid in full by credits, the buyer made the DEDUCT; in part, the card payment that posts it.
      createdBy: credits.kind === "full" ? ledgerActors.user(input.userId) : ledgerActors.payments,
    });
    if (!held.ok) {
      if (held.code !== "insufficient_funds")
        throw new Error(`invariant: a new order's credits were ${held.code}`);
      return {
        ok: false,
        code: "insufficient_funds",
        balanceCents: held.balanceCents,
        availableCents: held.availableCents,
      };
    }
  }

  try {
    // The claim goes first: a taken key must fail on its record before any other constraint is judged.
    const batch = [input.claim.complete({ status: 201, body: order }), ...statements];
    const holders = { userId: input.userId, productIds: lines.map((line) => line.product_id) };
    await commitReleasingLapsed(db, batch, holders, now);
  } catch (error) {
    // A constraint failure rolled the batch back for certain: the credits are free again. Anything else
    // (a lost answer) may have committed, so the transfer waits for its timeout to ask D1.
    if (isConstraintError(error)) await releaseOrderCredits(input.wallets, created.row);
    if (isPendingCapExceeded(error)) {
      // The batch only said "too much": read the buyer's count to say how much they hold.
      return {
        ok: false,
        code: "too_many_pending",
        pendingUnits: await pendingUnitsOf(db, input.userId),
        requestedUnits: units,
        maxPendingUnits: input.maxPendingUnits,
      };
    }
    if (isInventoryExceeded(error)) return soldOutAfterRace(db, lines);
    if (isDuplicateOrderKey(error)) {
      // The key already made an order (its stored response may have been purged): answer with that order.
      const existing = await findOrderByIdempotencyKey(db, input.userId, input.idempotencyKey);
      const found = existing && (await findOrderWithItems(db, existing.id));
      if (found) return { ok: true, order: toOrder(found.row, found.items) };
      return { ok: false, code: "idempotency_in_progress" };
    }
    throw error;
  }
  if (credits.kind === "full") await postOrderCredits(input.wallets, created.row);
  // Issuance has committed; what follows it (the receipt) fans out through the queue.
  if (paid) await publishOutboxEntry(db, input.events, paid, now);
  return { ok: true, order };
}

/**
 * Runs the order's batch. Refused for stock or for the buyer's cap, it expires the lapsed orders that
 * hold those products or count against that cap (at most LAPSED_RELEASE_LIMIT, with everything their
 * expiry undoes) and, if there were any, runs the batch once more. Any other failure, or a second
 * refusal, is the caller's to answer.
 */
async function commitReleasingLapsed(
  db: Db,
  batch: Statement[],
  holders: LapsedHolders,
  now: Date,
): Promise<void> {
  try {
    await atomically(db, batch);
    return;
  } catch (error) {
    if (!(isPendingCapExceeded(error) || isInventoryExceeded(error))) throw error;
    const lapsed = await findLapsedOrderIds(db, holders, now, LAPSED_RELEASE_LIMIT);
    if (lapsed.length === 0) throw error;
    try {
      // Expired here or, having lost a race, by whoever settled them: either way they hold nothing now.
      await expireOrders(db, lapsed, now);
    } catch (expiryError) {
      // The sweep will meet it too; this buyer gets the refusal the batch gave, not a 500.
      console.error(
        JSON.stringify({ level: "error", msg: "lapsed orders not expired", error: String(expiryError) }),
      );
      throw error;
    }
  }
  await atomically(db, batch);
}

function soldOut(productId: string, available: number): OrderRefusal {
  return { ok: false, code: "sold_out", productId, available: Math.max(0, available) };
}

/** Re-reads availability to name the product that ran short while the batch was in flight. */
async function soldOutAfterRace(db: Db, lines: PricedLine[]): Promise<OrderRefusal> {
  const rows = await findProductsByIds(
    db,
    lines.map((line) => line.product_id),
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  for (const line of lines) {
    const product = byId.get(line.product_id);
    if (product && availableUnits(product) < line.quantity)
      return soldOut(line.product_id, availableUnits(product));
  }
  const first = lines[0];
  const product = first && byId.get(first.product_id);
  return soldOut(first?.product_id ?? "", product ? availableUnits(product) : 0);
}
