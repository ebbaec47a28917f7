import { describe, it } from "vitest";
import { assertTransition, canTransition, holdDeadline, isHoldExpired } from "../../src/domain/orders";
import { ORDER_STATUSES, type OrderStatus } from "../../src/types/domain";

// Pins the order state machine: PENDING_PAYMENT may become PAID, PAYMENT_FAILED or EXPIRED, and every
// other state is terminal; and the hold on a pending order lapses at exactly its deadline.

const ALLOWED: ReadonlySet<string> = new Set([
  "PENDING_PAYMENT→PAID",
  "PENDING_PAYMENT→PAYMENT_FAILED",
  "PENDING_PAYMENT→EXPIRED",
]);
const TERMINAL: readonly OrderStatus[] = ["PAID", "PAYMENT_FAILED", "EXPIRED"];

const pairs = ORDER_STATUSES.flatMap((from) => ORDER_STATUSES.map((to) => [from, to] as const));

describe("order transitions", () => {
  it("knows the four states this table is written for", ({ expect }) => {
    expect([...ORDER_STATUSES].sort()).toEqual(["EXPIRED", "PAID", "PAYMENT_FAILED", "PENDING_PAYMENT"]);
    expect(pairs).toHaveLength(16);
  });

  it("canTransition allows exactly the three ways out of PENDING_PAYMENT, of all 16 pairs", ({ expect }) => {
    for (const [from, to] of pairs) {
      expect(canTransition(from, to), `${from} → ${to}`).toBe(ALLOWED.has(`${from}→${to}`));
    }
  });

  it("a pending order does not transition to itself", ({ expect }) => {
    expect(canTransition("PENDING_PAYMENT", "PENDING_PAYMENT")).toBe(false);
  });

  it("terminal states go nowhere, not even to themselves", ({ expect }) => {
    for (const from of TERMINAL) {
      for (const to of ORDER_STATUSES) expect(canTransition(from, to), `${from} → ${to}`).toBe(false);
    }
  });

  it("assertTransition returns for an allowed pair and throws naming both states otherwise", ({ expect }) => {
    for (const [from, to] of pairs) {
      if (ALLOWED.has(`${from}→${to}`)) {
        expect(assertTransition(from, to), `${from} → ${to}`).toBeUndefined();
      } else {
        expect(() => assertTransition(from, to), `${from} → ${to}`).toThrow(
          `Invalid order transition ${from} → ${to}`,
        );
      }
    }
  });
});

describe("order holds", () => {
  const created = new Date("2026-11-21T10:00:00.000Z");

  it("holdDeadline is now plus holdSeconds, in seconds", ({ expect }) => {
    expect(holdDeadline(created, 900).toISOString()).toBe("2026-11-21T10:15:00.000Z");
    expect(holdDeadline(created, 1).getTime()).toBe(created.getTime() + 1_000);
    expect(holdDeadline(created, 0).getTime()).toBe(created.getTime());
  });

  it("holdDeadline returns a new Date and leaves now untouched", ({ expect }) => {
    const now = new Date(created);
    const deadline = holdDeadline(now, 60);
    expect(deadline).not.toBe(now);
    expect(now.getTime()).toBe(created.getTime());
  });

  it("a pending order's hold lapses at exactly its deadline, not 1 ms before", ({ expect }) => {
    const deadline = holdDeadline(created, 900);
    const order = { status: "PENDING_PAYMENT" as const, expires_at: deadline.toISOString() };
    expect(isHoldExpired(order, new Date(deadline.getTime() - 1))).toBe(false);
    expect(isHoldExpired(order, deadline)).toBe(true);
    expect(isHoldExpired(order, new Date(deadline.getTime() + 1))).toBe(true);
    expect(isHoldExpired(order, created)).toBe(false);
  });

  it("only a pending order's hold expires: a settled order is never 'expired' by its hold", ({ expect }) => {
    const longAgo = "2020-01-01T00:00:00.000Z";
    for (const status of TERMINAL) {
      expect(isHoldExpired({ status, expires_at: longAgo }, created), status).toBe(false);
    }
    expect(isHoldExpired({ status: "PENDING_PAYMENT", expires_at: longAgo }, created)).toBe(true);
  });

  it("reads expires_at as an instant, whatever its offset", ({ expect }) => {
    // 11:00 at +01:00 is 10:00 UTC: the deadline is `created` itself.
    const order = { status: "PENDING_PAYMENT" as const, expires_at: "2026-11-21T11:00:00.000+01:00" };
    expect(isHoldExpired(order, new Date(created.getTime() - 1))).toBe(false);
    expect(isHoldExpired(order, created)).toBe(true);
  });
});
