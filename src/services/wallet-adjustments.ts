import type { OperatorClaims } from "../auth/operator-token";
import { ledgerKeys } from "../domain/ledger";
import type { Env } from "../env";
import type { AdjustmentResult } from "../objects/wallet";
import type { LedgerDirection } from "../types/domain";
import { walletObject } from "./wallet-object";

export interface AdjustmentInput {
  userId: string;
  direction: LedgerDirection;
  amountCents: number;
  reason: string;
  idempotencyKey: string;
  currency: string;
}

/**
 * An admin's correction of a wallet, posted through the wallet's object like every other change of it, and
 * audited in the same batch. A debit the available credit does not cover is refused
 * (`insufficient_funds`, with the balance), as is the key when it already made another adjustment.
 */
export async function adjustWallet(
  env: Env,
  operator: OperatorClaims,
  input: AdjustmentInput,
): Promise<AdjustmentResult> {
  return walletObject(env.WALLETS, input.userId).adjust({
    userId: input.userId,
    ledgerKey: ledgerKeys.adjustment(operator.operatorId, input.idempotencyKey),
    direction: input.direction,
    amountCents: input.amountCents,
    currency: input.currency,
    operatorId: operator.operatorId,
    reason: input.reason,
  });
}
