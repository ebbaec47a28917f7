import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { asc, eq } from "drizzle-orm";
import { orders, walletBalances, walletLedger } from "../../src/db/schema";
import { ledgerBalanceCents } from "../../src/domain/ledger";
import type { WalletTransactionPosted } from "../../src/queues/messages";
import { walletObject } from "../../src/services/wallet-object";
import { eventually } from "./eventually";
import { db, operatorToken } from "./fixtures";
import { callJson } from "./http";
import { openSession, registeredDevice } from "./staff";
import { buyerToken } from "./tokens";
import { deliver, newPaymentId } from "./webhooks";

const TOPUP_MAX_CENTS = Number(env.TOPUP_MAX_CENTS ?? 50_000);
const TOPUP_MIN_CENTS = Number(env.TOPUP_MIN_CENTS ?? 500);

export interface Problem {
  code?: string;
  balance_cents?: number;
  available_cents?: number;
  topup_url?: string;
  refundable_cents?: number;
}

export interface TopupBody extends Problem {
  topup_id: string;
  status: string;
  amount_cents: number;
  currency: string;
}

/** Starts a top-up through the API. */
export function startTopup(token: string, amountCents: number, key: string = crypto.randomUUID()) {
  return callJson<TopupBody>("POST", "/wallet/topups", {
    token,
    idempotencyKey: key,
    body: { amount_cents: amountCents },
  });
}

/** The gateway's SUCCESS for a top-up, signed and delivered. */
export function payTopup(topup: { topup_id: string; amount_cents: number }, paymentId = newPaymentId()) {
  return deliver<{ outcome: string; code?: string }>({
    payment_id: paymentId,
    reference: topup.topup_id,
    status: "SUCCESS",
    amount_cents: topup.amount_cents,
    currency: "EUR",
  });
}

/** Tops `userId`'s wallet up by `cents` through the API and the signed webhook, in top-ups within the limits. */
export async function topUp(userId: string, cents: number): Promise<void> {
  if (cents < TOPUP_MIN_CENTS) throw new Error(`top-ups start at ${TOPUP_MIN_CENTS}`);
  const token = await buyerToken(userId);
  for (let left = cents; left > 0; ) {
    const chunk = left > TOPUP_MAX_CENTS ? Math.min(TOPUP_MAX_CENTS, left - TOPUP_MIN_CENTS) : left;
    const started = await startTopup(token, chunk);
    if (started.status !== 201)
      throw new Error(`top-up failed: ${started.status} ${JSON.stringify(started.body)}`);
    const paid = await payTopup(started.body);
    if (paid.body.outcome !== "processed") throw new Error(`top-up payment: ${JSON.stringify(paid.body)}`);
    left -= chunk;
  }
}

/** A fresh buyer whose wallet holds exactly `cents`, funded through the API and a signed webhook. */
export async function fundedWallet(cents: number, userId = `wallet-${crypto.randomUUID()}`) {
  if (cents > 0) await topUp(userId, cents);
  return { userId, token: await buyerToken(userId) };
}

export async function walletQr(buyer: string): Promise<string> {
  const response = await callJson<{ token: string }>("POST", "/wallet/qr-token", { token: buyer });
  if (response.status !== 200) throw new Error(`wallet qr-token failed: ${response.status}`);
  return response.body.token;
}

export interface Till {
  token: string;
  operatorId: string;
  sessionId: string;
  deviceId: string;
  eventId: string;
}

/** A POS operator for `eventId` with an open session on a fresh POS device of that event. */
export async function posTill(eventId = `evt-${crypto.randomUUID().slice(0, 8)}`): Promise<Till> {
  const operator = await operatorToken(["pos"], [eventId]);
  const deviceId = await registeredDevice({ kind: "pos", event_id: eventId });
  const session = await openSession(operator.token, { device_id: deviceId });
  if (session.status !== 201) throw new Error(`POS session failed: ${session.status}`);
  return {
    token: operator.token,
    operatorId: operator.operatorId,
    sessionId: session.body.session_id,
    deviceId,
    eventId,
  };
}

export interface DeductionBody extends Problem {
  transaction_id: string;
  amount_cents: number;
  balance_cents: number;
  receipt: { id: string; event_id: string; device_id: string; created_at: string };
}

export function deduct(
  till: Till,
  qr: string,
  amountCents: number,
  options: { key?: string; reference?: string } = {},
) {
  return callJson<DeductionBody>("POST", "/pos/deductions", {
    token: till.token,
    idempotencyKey: options.key ?? crypto.randomUUID(),
    body: {
      qr_token: qr,
      amount_cents: amountCents,
      session_id: till.sessionId,
      ...(options.reference && { reference: options.reference }),
    },
  });
}

export interface LedgerRowBody extends Problem {
  id: string;
  type: string;
  direction: string;
  amount_cents: number;
  reversal_of: string | null;
  event_id: string | null;
  reference: string | null;
  idempotency_key: string;
  created_by: string;
  user_id?: string;
  wallet_ref?: string | null;
}

/** Who refunds: an operator token and their open POS session (a refund needs one). */
export interface PosActor {
  token: string;
  sessionId: string;
}

/**
 * An open POS session for `token` on a fresh device of `eventId`: for admins and supervisors, who refund
 * from a session of their own.
 */
export async function posSessionFor(token: string, eventId: string): Promise<PosActor> {
  const deviceId = await registeredDevice({ kind: "pos", event_id: eventId });
  const session = await openSession(token, { device_id: deviceId });
  if (session.status !== 201) throw new Error(`POS session failed: ${session.status} ${session.body.code}`);
  return { token, sessionId: session.body.session_id };
}

export function refund(
  actor: PosActor,
  transactionId: string,
  body: { amount_cents?: number; reason?: string } = {},
  key = crypto.randomUUID(),
) {
  return callJson<LedgerRowBody>("POST", `/pos/deductions/${transactionId}/refund`, {
    token: actor.token,
    idempotencyKey: key,
    body: { reason: "test refund", session_id: actor.sessionId, ...body },
  });
}

export function adjust(
  admin: string,
  userId: string,
  direction: "credit" | "debit",
  amountCents: number,
  key = crypto.randomUUID(),
) {
  return callJson<LedgerRowBody>("POST", `/admin/wallets/${encodeURIComponent(userId)}/adjustments`, {
    token: admin,
    idempotencyKey: key,
    body: { direction, amount_cents: amountCents, reason: "test adjustment" },
  });
}

export interface WalletBody {
  balance_cents: number;
  held_cents: number;
  available_cents: number;
  currency: string;
  updated_at: string | null;
}

export async function walletOf(buyer: string): Promise<WalletBody> {
  return (await callJson<WalletBody>("GET", "/wallet", { token: buyer })).body;
}

/** Every transaction of the caller, following next_cursor to the end. */
export async function allTransactions(buyer: string): Promise<LedgerRowBody[]> {
  const rows: LedgerRowBody[] = [];
  let cursor: string | null = null;
  do {
    const page: { body: { transactions: LedgerRowBody[]; next_cursor: string | null } } = await callJson(
      "GET",
      `/wallet/transactions${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`,
      { token: buyer },
    );
    rows.push(...page.body.transactions);
    cursor = page.body.next_cursor;
  } while (cursor);
  return rows;
}

/**
 * The wallet as D1's copy holds it (balance row, ledger rows and their signed sum) next to its journal
 * (the object's balance and held amount), once the copy has caught up with the journal: the object's
 * alarm is run now instead of after its gathering window, and the consumer's appends are waited for.
 * `waitForCopy: false` reads D1 as it is.
 */
export async function storedWallet(userId: string, { waitForCopy = true }: { waitForCopy?: boolean } = {}) {
  const stub = walletObject(env.WALLETS, userId);
  const d1 = async () => {
    const [balance] = await db().select().from(walletBalances).where(eq(walletBalances.userId, userId));
    const ledger = await db()
      .select()
      .from(walletLedger)
      .where(eq(walletLedger.userId, userId))
      .orderBy(asc(walletLedger.createdAt), asc(walletLedger.id));
    return { balance, ledger };
  };
  let copy = await d1();
  if (waitForCopy) {
    await runDurableObjectAlarm(stub);
    const journal = await stub.reconciliationView(userId);
    copy = await eventually(d1, (read) => read.ledger.length >= journal.postedCount);
    if (copy.ledger.length !== journal.postedCount) {
      throw new Error(`D1's copy has ${copy.ledger.length} rows, the journal ${journal.postedCount}`);
    }
  }
  const journal = await stub.view(userId);
  return {
    balanceCents: copy.balance?.balanceCents ?? 0,
    ledger: copy.ledger,
    ledgerSumCents: ledgerBalanceCents(
      copy.ledger.map((row) => ({ direction: row.direction, amount_cents: row.amountCents })),
    ),
    journalBalanceCents: journal.balance_cents,
    heldCents: journal.held_cents,
  };
}

/**
 * An order's credits as the wallet's journal holds them: the pending transfer keyed by the order, and
 * where it stands (PENDING, POSTED or VOIDED, as the D1 holds of earlier layouts said); undefined when the
 * order set no credits aside.
 */
export async function orderCreditsOf(orderId: string) {
  const order = await db().query.orders.findFirst({ where: eq(orders.id, orderId) });
  if (!order) return undefined;
  return runInDurableObject(walletObject(env.WALLETS, order.userId), (_instance, state) => {
    const row = state.storage.sql
      .exec<{ status: string; amount_cents: number }>(
        "SELECT status, amount_cents FROM transfers WHERE idempotency_key = ?",
        `order:${orderId}`,
      )
      .toArray()[0];
    return row && { status: row.status.toUpperCase(), amountCents: row.amount_cents };
  });
}

/**
 * Brings the timeout of every pending transfer of the wallet forward to now and runs the object's alarm:
 * what happens at an order's deadline plus the margin, without waiting for it. The object then asks D1
 * how each order ended.
 */
export async function timeOutOrderCredits(userId: string): Promise<void> {
  const stub = walletObject(env.WALLETS, userId);
  await runInDurableObject(stub, (_instance, state) => {
    state.storage.sql.exec("UPDATE transfers SET timeout_at_ms = ? WHERE status = 'pending'", Date.now() - 1);
  });
  await runDurableObjectAlarm(stub);
}

/**
 * A top-up's `wallet.topped_up` event as a wallet's journal sends it, carrying its ledger row: what the
 * consumer receives, without the webhook and the wallet's object in between.
 */
export function toppedUpEvent(
  userId: string,
  amountCents: number,
  reference = "top_test",
): WalletTransactionPosted {
  const createdAt = new Date().toISOString();
  const id = `txn_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
  return {
    type: "wallet.topped_up",
    transaction_id: id,
    user_id: userId,
    amount_cents: amountCents,
    currency: "EUR",
    reference,
    event_id: null,
    device_id: null,
    created_at: createdAt,
    ledger: {
      id,
      user_id: userId,
      type: "PURCHASE",
      direction: "credit",
      amount_cents: amountCents,
      currency: "EUR",
      reference,
      reversal_of: null,
      event_id: null,
      idempotency_key: `topup:${crypto.randomUUID()}`,
      created_at: createdAt,
      created_by: "system:payments",
    },
  };
}
