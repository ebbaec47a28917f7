import { customAlphabet } from "nanoid";

// Opaque, prefixed ids: 20 characters from a 32-letter lowercase alphabet is 100 bits of randomness,
// so ids are unguessable and never collide in practice.
const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const ID_RANDOM_LENGTH = 20;
const randomPart = customAlphabet(ID_ALPHABET, ID_RANDOM_LENGTH);

export const ID_PREFIXES = ["prd", "ord", "top", "txn", "ses", "red", "opr", "dev", "rct", "aud"] as const;
export type IdPrefix = (typeof ID_PREFIXES)[number];

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomPart()}`;
}

/**
 * A wallet transfer's id names the wallet's object (its 64 hex digit id) before the random part, so a
 * refund finds the deduction's owner from the id alone, without waiting for D1's copy of the ledger.
 */
export function newWalletTransactionId(walletObjectId: string): string {
  return `txn_${walletObjectId}_${randomPart()}`;
}

const WALLET_TRANSACTION_ID = new RegExp(`^txn_([0-9a-f]{64})_[${ID_ALPHABET}]{${ID_RANDOM_LENGTH}}$`);

/** The wallet object id a transaction id names, or undefined for ids from before (D1 knows their wallet). */
export function walletObjectIdOf(transactionId: string): string | undefined {
  return WALLET_TRANSACTION_ID.exec(transactionId)?.[1];
}
