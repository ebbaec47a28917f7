import type { Env } from "../env";
import type { WalletBalance, WalletObject } from "../objects/wallet";

/** The one object that decides what a user's wallet can spend (src/objects/wallet.ts). */
export const walletObject = (wallets: DurableObjectNamespace<WalletObject>, userId: string) =>
  wallets.get(wallets.idFromName(userId));

/**
 * Writes the wallet's decided POS deductions to D1 (they otherwise follow within one flush window), for a
 * reader of D1 that must see every deduction a till was already told about. Answers the object's view.
 */
export function flushWallet(env: Pick<Env, "WALLETS">, userId: string): Promise<WalletBalance> {
  return walletObject(env.WALLETS, userId).sync(userId);
}
