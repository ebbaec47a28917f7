import { ApiError } from "../errors";
import type { OrderRefusal } from "../services/reserve-order";
import { invalidField } from "./refusals";

/** An order refused, as the contract answers it: what was short or wrong, and by how much. */
export function orderRefused(refusal: OrderRefusal): ApiError {
  switch (refusal.code) {
    case "unknown_product":
      return new ApiError("unknown_product", `No product ${refusal.productId}`, {
        product_id: refusal.productId,
      });
    case "product_inactive":
      return new ApiError("product_inactive", `Product ${refusal.productId} is not for sale`, {
        product_id: refusal.productId,
      });
    case "credits_exceed_total":
      return invalidField(
        "credits_cents",
        `At most the order total (${refusal.totalCents})`,
        "credits_cents exceeds the order total",
      );
    case "insufficient_funds":
      return new ApiError("insufficient_funds", "Not enough wallet credit for credits_cents", {
        balance_cents: refusal.balanceCents,
        available_cents: refusal.availableCents,
      });
    case "too_many_pending":
      return new ApiError(
        "too_many_pending",
        `Unpaid orders may hold at most ${refusal.maxPendingUnits} units: pay or wait for pending orders first`,
        {
          pending_units: refusal.pendingUnits,
          requested_units: refusal.requestedUnits,
          max_pending_units: refusal.maxPendingUnits,
        },
      );
    case "sold_out":
      return new ApiError("sold_out", `Not enough of ${refusal.productId} left`, {
        product_id: refusal.productId,
        available: refusal.available,
      });
    case "idempotency_in_progress":
      return new ApiError("idempotency_in_progress");
  }
}
