import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { loadConfig } from "../../src/env";
import type { ApiError } from "../../src/errors";
import { orderRefused } from "../../src/http/order-refusals";
import { paymentRefused } from "../../src/http/payment-refusals";
import { invalidField, qrSigningConfig, qrTokenRefused } from "../../src/http/refusals";
import { adjustmentRefused, deductionRefused, refundRefused } from "../../src/http/wallet-refusals";
import { posSessionOf } from "../../src/services/pos-session";
import type { ValidatorSession } from "../../src/types/domain";

// The typed refusals of services and token checks, as the contract answers them: the same status, code,
// detail, extra fields and headers the services used to throw themselves.

/** What a client sees of a problem, besides its type and title. */
function answered(error: ApiError) {
  return {
    status: error.status,
    code: error.code,
    detail: error.message,
    extensions: error.extensions,
    headers: error.headers,
  };
}

const TOPUP_URL = "https://passes.example/#wallet";

describe("deductionRefused", () => {
  it("answers a short wallet 402 with the balance and where to top up, replayed with its header", ({
    expect,
  }) => {
    const short = { ok: false, code: "insufficient_funds", balanceCents: 120, availableCents: 80 } as const;
    expect(answered(deductionRefused(short, { replayed: false, topupUrl: TOPUP_URL }))).toEqual({
      status: 402,
      code: "insufficient_funds",
      detail: "Not enough credit in the wallet",
      extensions: { balance_cents: 120, available_cents: 80, topup_url: TOPUP_URL },
      headers: {},
    });
    expect(deductionRefused(short, { replayed: true, topupUrl: TOPUP_URL }).headers).toEqual({
      "idempotent-replayed": "true",
    });
  });

  it("answers the token's refusals 409 or 422, with the verifier's detail", ({ expect }) => {
    const answer = { replayed: true, topupUrl: TOPUP_URL };
    expect(answered(deductionRefused({ ok: false, code: "token_replayed" }, answer))).toEqual({
      status: 409,
      code: "token_replayed",
      detail: "This wallet token already paid; ask for a fresh one",
      extensions: {},
      headers: { "idempotent-replayed": "true" },
    });
    expect(answered(deductionRefused({ ok: false, code: "token_expired" }, answer))).toEqual({
      status: 422,
      code: "token_expired",
      detail: "Token has expired",
      extensions: {},
      headers: { "idempotent-replayed": "true" },
    });
    const noNonce = { ok: false, code: "token_invalid", detail: "Token has no nonce" } as const;
    expect(answered(deductionRefused(noNonce, { replayed: false, topupUrl: TOPUP_URL }))).toEqual({
      status: 422,
      code: "token_invalid",
      detail: "Token has no nonce",
      extensions: {},
      headers: {},
    });
  });

  it("answers a reused key 422 and an unreadable wallet 503 with retry-after, never as replayed", ({
    expect,
  }) => {
    const answer = { replayed: true, topupUrl: TOPUP_URL };
    expect(answered(deductionRefused({ ok: false, code: "idempotency_key_reused" }, answer))).toMatchObject({
      status: 422,
      code: "idempotency_key_reused",
      headers: {},
    });
    expect(answered(deductionRefused({ ok: false, code: "unavailable" }, answer))).toEqual({
      status: 503,
      code: "service_unavailable",
      detail: "The wallet could not be checked; retry with the same key",
      extensions: {},
      headers: { "retry-after": "1" },
    });
  });
});

describe("refundRefused and adjustmentRefused", () => {
  it("answer what the wallet's object refused", ({ expect }) => {
    expect(
      answered(refundRefused({ ok: false, code: "refund_exceeds_original", refundableCents: 150 })),
    ).toEqual({
      status: 409,
      code: "refund_exceeds_original",
      detail: "Refunds of a deduction never add up to more than it",
      extensions: { refundable_cents: 150 },
      headers: {},
    });
    expect(answered(refundRefused({ ok: false, code: "not_found" }))).toMatchObject({
      status: 404,
      detail: "No such deduction",
    });
    expect(refundRefused({ ok: false, code: "idempotency_key_reused" }).status).toBe(422);
    expect(
      answered(
        adjustmentRefused({ ok: false, code: "insufficient_funds", balanceCents: 10, availableCents: 5 }),
      ),
    ).toEqual({
      status: 402,
      code: "insufficient_funds",
      detail: "The debit exceeds the wallet's available credit",
      extensions: { balance_cents: 10, available_cents: 5 },
      headers: {},
    });
    expect(adjustmentRefused({ ok: false, code: "idempotency_key_reused" }).status).toBe(422);
  });
});

describe("paymentRefused", () => {
  it("answers an unknown reference 404, naming what was looked for", ({ expect }) => {
    const unknown = paymentRefused({ ok: false, code: "reference_not_found", paying: undefined });
    expect(answered(unknown)).toMatchObject({ status: 404, detail: "No order or top-up has this reference" });
    const order = paymentRefused({ ok: false, code: "reference_not_found", paying: "order" });
    expect(order.message).toBe("No order has this reference");
  });

  it("answers another amount 422 with what was due", ({ expect }) => {
    const mismatch = {
      ok: false,
      code: "amount_mismatch",
      expectedAmountCents: 2_500,
      expectedCurrency: "EUR",
    } as const;
    expect(answered(paymentRefused({ ...mismatch, paying: "topup" }))).toEqual({
      status: 422,
      code: "amount_mismatch",
      detail: "The payment does not match the top-up; recorded for review",
      extensions: { expected_amount_cents: 2_500, expected_currency: "EUR" },
      headers: {},
    });
    expect(paymentRefused({ ...mismatch, paying: "order" }).message).toBe(
      "The payment does not match the amount due; recorded for review",
    );
  });
});

describe("orderRefused", () => {
  it("names the product, the shortfall or the cap", ({ expect }) => {
    expect(answered(orderRefused({ ok: false, code: "unknown_product", productId: "prd_x" }))).toMatchObject({
      status: 422,
      detail: "No product prd_x",
      extensions: { product_id: "prd_x" },
    });
    expect(answered(orderRefused({ ok: false, code: "product_inactive", productId: "prd_x" }))).toMatchObject(
      {
        status: 409,
        detail: "Product prd_x is not for sale",
        extensions: { product_id: "prd_x" },
      },
    );
    expect(answered(orderRefused({ ok: false, code: "sold_out", productId: "prd_x", available: 2 }))).toEqual(
      {
        status: 409,
        code: "sold_out",
        detail: "Not enough of prd_x left",
        extensions: { product_id: "prd_x", available: 2 },
        headers: {},
      },
    );
    const tooMany = orderRefused({
      ok: false,
      code: "too_many_pending",
      pendingUnits: 7,
      requestedUnits: 4,
      maxPendingUnits: 10,
    });
    expect(answered(tooMany)).toEqual({
      status: 409,
      code: "too_many_pending",
      detail: "Unpaid orders may hold at most 10 units: pay or wait for pending orders first",
      extensions: { pending_units: 7, requested_units: 4, max_pending_units: 10 },
      headers: {},
    });
    expect(
      answered(orderRefused({ ok: false, code: "insufficient_funds", balanceCents: 3, availableCents: 1 })),
    ).toMatchObject({
      status: 402,
      detail: "Not enough wallet credit for credits_cents",
      extensions: { balance_cents: 3, available_cents: 1 },
    });
    expect(orderRefused({ ok: false, code: "idempotency_in_progress" }).status).toBe(409);
  });

  it("answers credits above the total as the validator answers a field", ({ expect }) => {
    expect(answered(orderRefused({ ok: false, code: "credits_exceed_total", totalCents: 900 }))).toEqual({
      status: 400,
      code: "validation_failed",
      detail: "credits_cents exceeds the order total",
      extensions: { errors: [{ path: "credits_cents", message: "At most the order total (900)" }] },
      headers: {},
    });
    expect(invalidField("to", "Too far").message).toBe("Too far");
  });
});

describe("QR tokens", () => {
  it("answers a refused token 422 with the verifier's detail, or the problem's title", ({ expect }) => {
    expect(
      answered(qrTokenRefused({ ok: false, code: "token_invalid", detail: "Token is too long" })),
    ).toEqual({
      status: 422,
      code: "token_invalid",
      detail: "Token is too long",
      extensions: {},
      headers: {},
    });
    expect(qrTokenRefused({ ok: false, code: "token_invalid" }).message).toBe("Token is invalid");
  });

  it("signs only with a key; without one, 503", ({ expect }) => {
    const config = loadConfig(env);
    expect(qrSigningConfig(config)).toBe(config);
    let refused: unknown;
    try {
      qrSigningConfig({ ...config, qrSigningJwk: undefined });
    } catch (error) {
      refused = error;
    }
    expect(answered(refused as ApiError)).toMatchObject({
      status: 503,
      code: "service_unavailable",
      detail: "QR signing is not configured",
    });
  });
});

describe("posSessionOf", () => {
  const session: ValidatorSession = {
    session_id: "ses_1",
    operator_id: "opr_1",
    device_id: "dev_1",
    kind: "pos",
    location_id: "loc_1",
    event_id: "evt_a",
    opened_at: "2026-11-21T10:00:00.000Z",
    expires_at: "2026-11-21T22:00:00.000Z",
    closed_at: null,
  };

  it("is the till at the session's event while the operator still works there", ({ expect }) => {
    const pos = { operatorId: "opr_1", roles: ["pos" as const], eventIds: ["evt_a"] };
    expect(posSessionOf(session, pos)).toEqual({
      ok: true,
      session: { sessionId: "ses_1", deviceId: "dev_1", eventId: "evt_a", openedAt: session.opened_at },
    });
    const admin = { operatorId: "opr_2", roles: ["admin" as const], eventIds: [] };
    expect(posSessionOf(session, admin).ok).toBe(true);
  });

  it("refuses a session whose event was taken from the operator, or that has none", ({ expect }) => {
    const moved = { operatorId: "opr_1", roles: ["pos" as const], eventIds: ["evt_b"] };
    expect(posSessionOf(session, moved)).toEqual({
      ok: false,
      code: "session_invalid",
      detail: "The session's event is no longer one of this operator's",
    });
    const pos = { operatorId: "opr_1", roles: ["pos" as const], eventIds: ["evt_a"] };
    expect(posSessionOf({ ...session, event_id: null }, pos)).toEqual({
      ok: false,
      code: "session_invalid",
      detail: "The POS session has no event",
    });
  });
});
