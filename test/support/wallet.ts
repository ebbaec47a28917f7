import { env } from "cloudflare:workers";
import { asc, eq } from "drizzle-orm";
import { atomically } from "../../src/db/client";
import { walletBalances, walletHolds, walletLedger } from "../../src/db/schema";
import { ledgerEntry } from "../../src/db/wallet";
import { ledgerBalanceCents } from "../../src/domain/ledger";
import type { WalletTransactionPosted } from "../../src/queues/messages";
import { flushWallet } from "../../src/services/wallet-object";
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
 * What D1 holds for one wallet: its balance row, ledger and holds, after the wallet's object flushed the
 * deductions it decided (they otherwise reach D1 within a flush window). `flush: false` reads D1 as is.
 */
export async function storedWallet(userId: string, { flush = true }: { flush?: boolean } = {}) {
  if (flush) await flushWallet(env, userId);
  const [balance] = await db().select().from(walletBalances).where(eq(walletBalances.userId, userId));
  const ledger = await db()
    .select()
    .from(walletLedger)
    .where(eq(walletLedger.userId, userId))
    .orderBy(asc(walletLedger.createdAt), asc(walletLedger.id));
  const holds = await db().select().from(walletHolds).where(eq(walletHolds.userId, userId));
  return {
    balanceCents: balance?.balanceCents ?? 0,
    heldCents: balance?.heldCents ?? 0,
    ledger,
    holds,
    ledgerSumCents: ledgerBalanceCents(
      ledger.map((row) => ({ direction: row.direction, amount_cents: row.amountCents })),
    ),
    pendingHoldCents: holds
      .filter((hold) => hold.status === "PENDING")
      .reduce((sum, hold) => sum + hold.amountCents, 0),
  };
}

/**
 * A top-up's PURCHASE written straight to the ledger, and the `wallet.topped_up` event that announces it:
 * what the consumer receives, without the webhook and the wallet's object in between.
 */
export async function toppedUpEvent(
  userId: string,
  amountCents: number,
  reference = "top_test",
): Promise<WalletTransactionPosted> {
  const { row, statement } = ledgerEntry(db(), {
    userId,
    type: "PURCHASE",
    amountCents,
    currency: "EUR",
    reference,
    idempotencyKey: `topup:${crypto.randomUUID()}`,
    createdBy: "system:payments",
    now: new Date(),
  });
  await atomically(db(), [statement]);
  return {
    type: "wallet.topped_up",
    transaction_id: row.id,
    user_id: userId,
    amount_cents: row.amountCents,
    currency: row.currency,
    reference: row.reference,
    event_id: null,
    device_id: null,
    created_at: row.createdAt,
  };
}
