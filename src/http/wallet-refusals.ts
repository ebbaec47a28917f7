import { ApiError } from "../errors";
import type { AdjustmentResult, WalletPosting } from "../objects/wallet";
import type { PosDeductionRefusal, PosRefundRefusal } from "../services/wallet-pos";
import { REPLAYED_HEADER } from "./idempotency";
import { qrTokenRefused } from "./refusals";

/**
 * A till's deduction refused, as the contract answers it. A refusal stored under the key is answered
 * again with `idempotent-replayed: true`; `topup_url` is where a short wallet is sent to top up.
 */
export function deductionRefused(
  refusal: PosDeductionRefusal,
  answer: { replayed: boolean; topupUrl: string },
): ApiError {
  const headers: Record<string, string> = answer.replayed ? { [REPLAYED_HEADER]: "true" } : {};
  switch (refusal.code) {
    case "insufficient_funds":
      return new ApiError(
        "insufficient_funds",
        "Not enough credit in the wallet",
        {
          balance_cents: refusal.balanceCents,
          available_cents: refusal.availableCents,
          topup_url: answer.topupUrl,
        },
        headers,
      );
    case "token_replayed":
      return new ApiError(
        "token_replayed",
        "This wallet token already paid; ask for a fresh one",
        {},
        headers,
      );
    case "token_invalid":
      return qrTokenRefused(refusal);
    case "token_expired":
      // Refused by the verifier (never replayed) or by the wallet's object (replayed with its header).
      return new ApiError("token_expired", undefined, {}, headers);
    case "idempotency_key_reused":
      return new ApiError("idempotency_key_reused");
    case "unavailable":
      // Nothing was decided or stored: the same key may be sent again.
      return new ApiError(
        "service_unavailable",
        "The wallet could not be checked; retry with the same key",
        {},
        { "retry-after": "1" },
      );
  }
}

/** A refund of a deduction refused by the wallet's object: 422, 404 or 409 with `refundable_cents`. */
export function refundRefused(refusal: PosRefundRefusal): ApiError {
  switch (refusal.code) {
    case "idempotency_key_reused":
      return new ApiError("idempotency_key_reused");
    case "not_found":
      return new ApiError("not_found", "No such deduction");
    case "approval_required":
      return new ApiError(
        "approval_required",
        "With the earlier refunds of this deduction, this one is above the limit a till may refund alone",
      );
    case "refund_exceeds_original":
      return new ApiError("refund_exceeds_original", "Refunds of a deduction never add up to more than it", {
        refundable_cents: refusal.refundableCents,
      });
  }
}

/** An admin's adjustment refused: the key reused (422), or a debit the available credit does not cover (402). */
export function adjustmentRefused(refusal: Exclude<AdjustmentResult, WalletPosting>): ApiError {
  if (refusal.code === "idempotency_key_reused") return new ApiError("idempotency_key_reused");
  return new ApiError("insufficient_funds", "The debit exceeds the wallet's available credit", {
    balance_cents: refusal.balanceCents,
    available_cents: refusal.availableCents,
  });
}
