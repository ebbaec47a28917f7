import { ApiError } from "../errors";
import type { PaymentRefusal } from "../services/payment-events";

/**
 * A gateway delivery that changed nothing, as the contract answers it: 404 `reference_not_found`, or 422
 * `amount_mismatch` with what was due (the delivery is already recorded for review).
 */
export function paymentRefused(refusal: PaymentRefusal): ApiError {
  if (refusal.code === "reference_not_found") {
    const detail =
      refusal.paying === "order" ? "No order has this reference" : "No order or top-up has this reference";
    return new ApiError("reference_not_found", detail);
  }
  const detail =
    refusal.paying === "order"
      ? "The payment does not match the amount due; recorded for review"
      : "The payment does not match the top-up; recorded for review";
  return new ApiError("amount_mismatch", detail, {
    expected_amount_cents: refusal.expectedAmountCents,
    expected_currency: refusal.expectedCurrency,
  });
}
