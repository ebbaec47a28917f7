import type { Env } from "../env";
import type { WalletBalance } from "../objects/wallet";

/** The one object that decides what a user's wallet can spend (src/objects/wallet.ts). */
export const walletObject = (env: Pick<Env, "WALLETS">, userId: string) =>
  env.WALLETS.get(env.WALLETS.idFromName(userId));

/**
 * Writes the wallet's decided POS deductions to D1 (they otherwise follow within one flush window), for a
 * reader of D1 that must see every deduction a till was already told about. Answers the object's view.
 */
export function flushWallet(env: Pick<Env, "WALLETS">, userId: string): Promise<WalletBalance> {
  return walletObject(env, userId).sync(userId);
}
