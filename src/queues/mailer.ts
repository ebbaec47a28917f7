import type { Receipt } from "../db/receipts";
import type { WalletReceiptRow } from "../db/wallet";
import type { Env } from "../env";

/** An order's receipt, or a wallet top-up's or POS deduction's (those carry `transactionId`). */
export type MailableReceipt = Receipt | WalletReceiptRow;

/** Where receipts go once written. The consumer calls it at least once per receipt, so it may see repeats. */
export interface Mailer {
  sendReceipt(receipt: MailableReceipt): Promise<void>;
}

/**
 * Development mailer: one JSON log line per receipt. The buyer's address lives with the identity provider
 * (we only know the user id), so a production mailer resolves it there before sending.
 */
export const logMailer: Mailer = {
  async sendReceipt(receipt) {
    console.log(JSON.stringify({ level: "info", msg: "receipt mailed", receipt }));
  },
};

export function createMailer(_env: Env): Mailer {
  return logMailer;
}
