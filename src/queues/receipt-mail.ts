import { findBuyerEmail } from "../db/buyer-contacts";
import type { Db } from "../db/client";
import {
  markReceiptMailSkipped,
  markRefundReceipt,
  markWalletReceiptMailSkipped,
  markWalletReceiptsMailSkipped,
  orderReceiptDetails,
  type RefundReceiptRow,
  walletReceiptsToMail,
} from "../db/receipt-mail";
import {
  markReceiptMailed,
  markWalletReceiptMailed,
  markWalletReceiptsMailed,
  type Receipt,
  type WalletReceiptRow,
} from "../db/receipts";
import { receiptIdForTransaction } from "../domain/ledger";
import type { Mailer, OutgoingEmail } from "../mail/mailer";
import {
  orderReceiptEmail,
  posRefundReceiptEmail,
  posSaleReceiptEmail,
  ticketsPageUrl,
  topupReceiptEmail,
} from "../mail/templates";

// Mailing a written receipt: find the buyer's address, compose, send, mark. The mailer throws when the
// provider refuses, and nothing is marked then, so the consumer's retry sends again under the same id
// (the provider's idempotency key). A buyer without a known address is no failure: the receipt is marked
// skipped, logged, and its message acked.

export interface ReceiptMailing {
  db: Db;
  mailer: Mailer;
  now?: () => Date;
  /** The deployment's public address, for the link to the buyer's tickets; without it, no link. */
  publicBaseUrl?: string;
}

function logSkipped(receipt: { id: string; userId: string }): void {
  console.log(
    JSON.stringify({
      level: "info",
      msg: "receipt not mailed: no address known for its buyer",
      receipt_id: receipt.id,
      user_id: receipt.userId,
    }),
  );
}

/**
 * One receipt's mailing, the same for every kind: no address → logged and marked skipped; else composed,
 * sent, then marked mailed. A refused send throws before the mark, so the retry sends again.
 */
async function deliverReceipt(
  mailer: Mailer,
  receipt: { id: string; userId: string },
  to: string | null | undefined,
  compose: (to: string) => OutgoingEmail,
  mark: (outcome: "mailed" | "skipped") => Promise<unknown>,
): Promise<void> {
  if (!to) {
    logSkipped(receipt);
    await mark("skipped");
    return;
  }
  await mailer.send(compose(to));
  await mark("mailed");
}

export async function mailOrderReceipt(
  receipt: Receipt,
  { db, mailer, now = () => new Date(), publicBaseUrl }: ReceiptMailing,
): Promise<void> {
  const details = await orderReceiptDetails(db, receipt.userId, receipt.orderId);
  await deliverReceipt(
    mailer,
    receipt,
    details.email,
    (to) => ({
      id: receipt.id,
      to,
      ...orderReceiptEmail({
        receiptId: receipt.id,
        orderId: receipt.orderId,
        currency: receipt.currency,
        lines: receipt.lines,
        totalCents: receipt.totalCents,
        amountPaidCents: receipt.amountPaidCents,
        paidAt: receipt.paidAt,
        tickets: details.tickets,
        ticketsUrl: ticketsPageUrl(publicBaseUrl),
      }),
    }),
    (outcome) =>
      outcome === "mailed"
        ? markReceiptMailed(db, receipt.id, now())
        : markReceiptMailSkipped(db, receipt.id, now()),
  );
}

/** A top-up's or a POS sale's receipt as an email to `to`. */
export function walletReceiptEmail(receipt: WalletReceiptRow, to: string): OutgoingEmail {
  const rendered =
    receipt.kind === "TOPUP"
      ? topupReceiptEmail({
          receiptId: receipt.id,
          amountCents: receipt.amountCents,
          currency: receipt.currency,
          createdAt: receipt.createdAt,
        })
      : posSaleReceiptEmail({
          receiptId: receipt.id,
          amountCents: receipt.amountCents,
          currency: receipt.currency,
          eventId: receipt.eventId,
          deviceId: receipt.deviceId,
          reference: receipt.reference,
          createdAt: receipt.createdAt,
        });
  return { id: receipt.id, to, ...rendered };
}

export async function mailWalletReceipt(
  receipt: WalletReceiptRow,
  { db, mailer, now = () => new Date() }: ReceiptMailing,
): Promise<void> {
  await deliverReceipt(
    mailer,
    receipt,
    await findBuyerEmail(db, receipt.userId),
    (to) => walletReceiptEmail(receipt, to),
    (outcome) =>
      outcome === "mailed"
        ? markWalletReceiptMailed(db, receipt.id, now())
        : markWalletReceiptMailSkipped(db, receipt.id, now()),
  );
}

/**
 * A batch's wallet receipts together: one read of those still to mail (with their buyers' addresses),
 * then one send each, one mark for what was mailed and one for what has no address. Answers the ids the
 * mailer refused, left unmarked for their messages to retry one by one. Throws if a read or a mark fails.
 */
export async function mailWalletReceiptsTogether(
  receiptIds: string[],
  { db, mailer, now = () => new Date() }: ReceiptMailing,
): Promise<Set<string>> {
  const refused = new Set<string>();
  const mailed: string[] = [];
  const skipped: string[] = [];
  for (const { receipt, email } of await walletReceiptsToMail(db, receiptIds)) {
    if (!email) {
      logSkipped(receipt);
      skipped.push(receipt.id);
      continue;
    }
    try {
      await mailer.send(walletReceiptEmail(receipt, email));
      mailed.push(receipt.id);
    } catch {
      refused.add(receipt.id);
    }
  }
  await markWalletReceiptsMailed(db, mailed, now());
  await markWalletReceiptsMailSkipped(db, skipped, now());
  return refused;
}

export async function mailRefundReceipt(
  receipt: RefundReceiptRow,
  sale: WalletReceiptRow | undefined,
  { db, mailer, now = () => new Date() }: ReceiptMailing,
): Promise<void> {
  await deliverReceipt(
    mailer,
    receipt,
    await findBuyerEmail(db, receipt.userId),
    (to) => ({
      id: receipt.id,
      to,
      ...posRefundReceiptEmail({
        receiptId: receipt.id,
        amountCents: receipt.amountCents,
        currency: receipt.currency,
        eventId: receipt.eventId,
        reference: receipt.reference,
        createdAt: receipt.createdAt,
        sale: {
          receiptId: receiptIdForTransaction(receipt.reversalOf),
          amountCents: sale?.amountCents,
          createdAt: sale?.createdAt,
        },
      }),
    }),
    (outcome) => markRefundReceipt(db, receipt.id, outcome, now()),
  );
}
