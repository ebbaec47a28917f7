import type { WalletObject } from "../objects/wallet";

/** The one object that owns a user's wallet (src/objects/wallet.ts). */
export const walletObject = (wallets: DurableObjectNamespace<WalletObject>, userId: string) =>
  wallets.get(wallets.idFromName(userId));
