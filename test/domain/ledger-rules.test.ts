import { describe, it } from "vitest";
import {
  availableCents,
  directionOf,
  ledgerActors,
  ledgerBalanceCents,
  ledgerKeys,
  receiptIdForTransaction,
  refundAmountCents,
  refuseDeduction,
  signedAmountCents,
} from "../../src/domain/ledger";

// Pins the credits ledger's pure rules (all of ledger.ts but planOrderCredits): when a till's deduction is
// refused and why, how much a refund may return, the row signs a balance adds up from, and the ids and
// idempotency keys derived from other ids.

const NOW_MS = Date.parse("2026-11-21T10:00:00.000Z");
const FRESH_EXP_SECONDS = NOW_MS / 1000 + 60;

type DeductionInput = Parameters<typeof refuseDeduction>[0];
const deduction = (overrides: Partial<DeductionInput> = {}) =>
  refuseDeduction({
    amountCents: 500,
    availableCents: 1_000,
    jtiSpent: false,
    tokenExpiresAtSeconds: FRESH_EXP_SECONDS,
    nowMs: NOW_MS,
    ...overrides,
  });

describe("refuseDeduction", () => {
  it("takes exactly the available credit and refuses one cent more", ({ expect }) => {
    expect(deduction({ amountCents: 1_000, availableCents: 1_000 })).toBeNull();
    expect(deduction({ amountCents: 1_000, availableCents: 999 })).toBe("insufficient_funds");
    expect(deduction({ amountCents: 1_001, availableCents: 1_000 })).toBe("insufficient_funds");
    expect(deduction({ amountCents: 1, availableCents: 0 })).toBe("insufficient_funds");
  });

  it("judges the available credit, so holds reduce what a till may take", ({ expect }) => {
    const wallet = { balance_cents: 1_000, held_cents: 400 };
    expect(deduction({ amountCents: 600, availableCents: availableCents(wallet) })).toBeNull();
    expect(deduction({ amountCents: 601, availableCents: availableCents(wallet) })).toBe(
      "insufficient_funds",
    );
    // A balance fully held leaves nothing.
    const allHeld = { balance_cents: 1_000, held_cents: 1_000 };
    expect(deduction({ amountCents: 1, availableCents: availableCents(allHeld) })).toBe("insufficient_funds");
  });

  it("refuses a spent jti as token_replayed", ({ expect }) => {
    expect(deduction({ jtiSpent: true })).toBe("token_replayed");
  });

  it("expires the token at exactly exp (exp in seconds, now in ms, exp*1000 <= now)", ({ expect }) => {
    const exp = NOW_MS / 1000;
    expect(deduction({ tokenExpiresAtSeconds: exp, nowMs: exp * 1000 - 1 })).toBeNull();
    expect(deduction({ tokenExpiresAtSeconds: exp, nowMs: exp * 1000 })).toBe("token_expired");
    expect(deduction({ tokenExpiresAtSeconds: exp, nowMs: exp * 1000 + 1 })).toBe("token_expired");
  });

  it("judges in the contract's order: expired, then replayed, then funds", ({ expect }) => {
    // Why (refuseDeduction's comment): the route verified the token with some clock tolerance and the jti
    // is forgotten at exp, so inside that tolerance a token past exp could otherwise be replayed. Then a
    // spent jti, then the credit: a replayed token learns nothing of the wallet's balance.
    const expired = NOW_MS / 1000;
    expect(deduction({ tokenExpiresAtSeconds: expired, jtiSpent: true, amountCents: 5_000 })).toBe(
      "token_expired",
    );
    expect(deduction({ tokenExpiresAtSeconds: expired, jtiSpent: true })).toBe("token_expired");
    expect(deduction({ tokenExpiresAtSeconds: expired, amountCents: 5_000 })).toBe("token_expired");
    expect(deduction({ jtiSpent: true, amountCents: 5_000 })).toBe("token_replayed");
  });
});

describe("refundAmountCents", () => {
  const sold = (refunded_cents: number) => ({ original_cents: 1_000, refunded_cents });

  it("with no amount named, refunds whatever is left", ({ expect }) => {
    expect(refundAmountCents(sold(0), undefined)).toBe(1_000);
    expect(refundAmountCents(sold(300), undefined)).toBe(700);
    expect(refundAmountCents(sold(999), undefined)).toBe(1);
  });

  it("refunds exactly what is left, and refuses one cent over", ({ expect }) => {
    expect(refundAmountCents(sold(300), 700)).toBe(700);
    expect(refundAmountCents(sold(300), 701)).toBeNull();
    expect(refundAmountCents(sold(0), 1_000)).toBe(1_000);
    expect(refundAmountCents(sold(0), 1_001)).toBeNull();
  });

  it("refunds part of what is left, as asked, down to one cent", ({ expect }) => {
    expect(refundAmountCents(sold(300), 250)).toBe(250);
    expect(refundAmountCents(sold(300), 1)).toBe(1);
  });

  it("refuses when nothing is left, whether an amount is named or not", ({ expect }) => {
    expect(refundAmountCents(sold(1_000), undefined)).toBeNull();
    expect(refundAmountCents(sold(1_000), 1)).toBeNull();
  });

  it("refuses a zero or negative amount", ({ expect }) => {
    expect(refundAmountCents(sold(0), 0)).toBeNull();
    expect(refundAmountCents(sold(0), -1)).toBeNull();
  });

  it("refuses (never returns a negative amount) when the totals are already over-refunded", ({ expect }) => {
    expect(refundAmountCents(sold(1_001), undefined)).toBeNull();
    expect(refundAmountCents(sold(1_001), 1)).toBeNull();
  });
});

describe("row signs and balances", () => {
  it("directionOf: PURCHASE and REFUND credit, DEDUCT debits, whatever direction is passed", ({ expect }) => {
    expect(directionOf("PURCHASE")).toBe("credit");
    expect(directionOf("REFUND")).toBe("credit");
    expect(directionOf("DEDUCT")).toBe("debit");
    expect(directionOf("PURCHASE", "debit")).toBe("credit");
    expect(directionOf("REFUND", "debit")).toBe("credit");
    expect(directionOf("DEDUCT", "credit")).toBe("debit");
  });

  it("directionOf: an ADJUSTMENT takes the direction asked for, and needs one", ({ expect }) => {
    expect(directionOf("ADJUSTMENT", "credit")).toBe("credit");
    expect(directionOf("ADJUSTMENT", "debit")).toBe("debit");
    expect(() => directionOf("ADJUSTMENT")).toThrow("an ADJUSTMENT needs a direction");
  });

  it("signedAmountCents: credits add, debits subtract", ({ expect }) => {
    expect(signedAmountCents({ direction: "credit", amount_cents: 250 })).toBe(250);
    expect(signedAmountCents({ direction: "debit", amount_cents: 250 })).toBe(-250);
  });

  it("ledgerBalanceCents: the sum of the signed rows, zero for none", ({ expect }) => {
    expect(ledgerBalanceCents([])).toBe(0);
    expect(
      ledgerBalanceCents([
        { direction: "credit", amount_cents: 5_000 },
        { direction: "debit", amount_cents: 1_200 },
        { direction: "credit", amount_cents: 200 },
        { direction: "debit", amount_cents: 4_000 },
      ]),
    ).toBe(0);
    expect(
      ledgerBalanceCents([
        { direction: "credit", amount_cents: 5_000 },
        { direction: "debit", amount_cents: 1_234 },
      ]),
    ).toBe(3_766);
  });

  it("availableCents: the balance less what is held", ({ expect }) => {
    expect(availableCents({ balance_cents: 1_000, held_cents: 0 })).toBe(1_000);
    expect(availableCents({ balance_cents: 1_000, held_cents: 400 })).toBe(600);
    expect(availableCents({ balance_cents: 1_000, held_cents: 1_000 })).toBe(0);
  });
});

describe("derived ids", () => {
  it("receiptIdForTransaction: rct_ plus the transaction's id without txn_, the same every time", ({
    expect,
  }) => {
    expect(receiptIdForTransaction("txn_01HZX3")).toBe("rct_01HZX3");
    expect(receiptIdForTransaction("txn_01HZX3")).toBe(receiptIdForTransaction("txn_01HZX3"));
    expect(receiptIdForTransaction("txn_a")).not.toBe(receiptIdForTransaction("txn_b"));
  });

  it("receiptIdForTransaction: strips only a leading txn_, once", ({ expect }) => {
    expect(receiptIdForTransaction("txn_txn_1")).toBe("rct_txn_1");
    expect(receiptIdForTransaction("abc_txn_1")).toBe("rct_abc_txn_1");
    expect(receiptIdForTransaction("01HZX3")).toBe("rct_01HZX3");
  });
});

describe("idempotency keys and actors", () => {
  it("ledgerKeys: one namespace per operation, scoped to the caller", ({ expect }) => {
    expect(ledgerKeys.topup("top_1")).toBe("topup:top_1");
    expect(ledgerKeys.order("ord_1")).toBe("order:ord_1");
    expect(ledgerKeys.posDeduction("op_1", "k")).toBe("pos.deduct:op_1:k");
    expect(ledgerKeys.posRefund("op_1", "k")).toBe("pos.refund:op_1:k");
    expect(ledgerKeys.adjustment("op_1", "k")).toBe("adjust:op_1:k");
  });

  it("ledgerKeys: the same caller key never collides across operations or callers", ({ expect }) => {
    const keys = [
      ledgerKeys.topup("k"),
      ledgerKeys.order("k"),
      ledgerKeys.posDeduction("op_1", "k"),
      ledgerKeys.posRefund("op_1", "k"),
      ledgerKeys.adjustment("op_1", "k"),
      ledgerKeys.posDeduction("op_2", "k"),
      ledgerKeys.posRefund("op_2", "k"),
      ledgerKeys.adjustment("op_2", "k"),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("ledgerActors: who wrote a row", ({ expect }) => {
    expect(ledgerActors.user("usr_1")).toBe("user:usr_1");
    expect(ledgerActors.operator("op_1")).toBe("operator:op_1");
    expect(ledgerActors.device("dev_1")).toBe("device:dev_1");
    expect(ledgerActors.payments).toBe("system:payments");
  });
});
