import type { OperatorClaims } from "../auth/operator-token";
import { ledgerKeys } from "../domain/ledger";
import type { Env } from "../env";
import { ApiError } from "../errors";
import type { LedgerDirection, WalletTransaction } from "../types/domain";
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
 * audited in the same batch. A debit the available credit does not cover is 402 `insufficient_funds`.
 */
export async function adjustWallet(
  env: Env,
  operator: OperatorClaims,
  input: AdjustmentInput,
): Promise<WalletTransaction> {
  const result = await walletObject(env.WALLETS, input.userId).adjust({
    userId: input.userId,
    ledgerKey: ledgerKeys.adjustment(operator.operatorId, input.idempotencyKey),
    direction: input.direction,
    amountCents: input.amountCents,
    currency: input.currency,
    operatorId: operator.operatorId,
    reason: input.reason,
  });
  if (result.ok) return result.transaction;
  if (result.code === "idempotency_key_reused") throw new ApiError("idempotency_key_reused");
  throw new ApiError("insufficient_funds", "The debit exceeds the wallet's available credit", {
    balance_cents: result.balanceCents,
    available_cents: result.availableCents,
  });
}
