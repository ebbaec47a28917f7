import { describe, it } from "vitest";
import { planOrderCredits } from "../../src/domain/ledger";
import { MAX_QUANTITY_PER_ITEM, mergeOrderItems, orderTotalCents } from "../../src/domain/orders";
import { MAX_REPORT_RANGE_DAYS, parseReportRange } from "../../src/domain/report-range";

// The rules below the routes answer typed outcomes; the routes turn refusals into problems
// (test/routes/orders.test.ts, reports.test.ts). These pin the rules themselves at their boundaries.

describe("planOrderCredits", () => {
  it("none, part, all of the total, or a refusal one cent over", ({ expect }) => {
    expect(planOrderCredits(1_000, undefined)).toEqual({ kind: "none", appliedCents: 0 });
    expect(planOrderCredits(1_000, 0)).toEqual({ kind: "none", appliedCents: 0 });
    expect(planOrderCredits(1_000, 1)).toEqual({ kind: "partial", appliedCents: 1 });
    expect(planOrderCredits(1_000, 999)).toEqual({ kind: "partial", appliedCents: 999 });
    expect(planOrderCredits(1_000, 1_000)).toEqual({ kind: "full", appliedCents: 1_000 });
    expect(planOrderCredits(1_000, 1_001)).toEqual({ kind: "exceeds_total", totalCents: 1_000 });
  });
});

describe("mergeOrderItems", () => {
  it("merges lines of one product in first-seen order, and judges the limit on the merged quantity", ({
    expect,
  }) => {
    const half = MAX_QUANTITY_PER_ITEM / 2;
    expect(
      mergeOrderItems([
        { product_id: "b", quantity: half },
        { product_id: "a", quantity: 1 },
        { product_id: "b", quantity: half },
      ]),
    ).toEqual({
      ok: true,
      items: [
        { product_id: "b", quantity: MAX_QUANTITY_PER_ITEM },
        { product_id: "a", quantity: 1 },
      ],
    });
    // One over the limit once merged; the refusal names the merged line, not the request's.
    expect(
      mergeOrderItems([
        { product_id: "a", quantity: 1 },
        { product_id: "b", quantity: half },
        { product_id: "b", quantity: half + 1 },
      ]),
    ).toEqual({ ok: false, overLimitIndex: 1 });
  });
});

describe("orderTotalCents", () => {
  it("sums quantity × unit price in integer cents", ({ expect }) => {
    expect(
      orderTotalCents([
        { product_id: "a", quantity: 3, unit_price_cents: 250 },
        { product_id: "b", quantity: 1, unit_price_cents: 99 },
      ]),
    ).toBe(849);
    expect(orderTotalCents([])).toBe(0);
  });
});

describe("parseReportRange", () => {
  it("a plain `to` date includes its day; a timestamp is exclusive", ({ expect }) => {
    expect(parseReportRange("2026-11-01", "2026-11-30")).toEqual({
      ok: true,
      fromIso: "2026-11-01T00:00:00.000Z",
      toIso: "2026-12-01T00:00:00.000Z",
    });
    expect(parseReportRange("2026-11-01T10:00:00Z", "2026-11-01T10:30:00+00:00")).toMatchObject({
      ok: true,
      toIso: "2026-11-01T10:30:00.000Z",
    });
  });

  it("refuses naming the bound at fault: off the calendar, reversed, empty, too long", ({ expect }) => {
    expect(parseReportRange("2026-02-30", "2026-03-01")).toMatchObject({ ok: false, path: "from" });
    expect(parseReportRange("2026-03-01", "yesterday")).toMatchObject({ ok: false, path: "to" });
    expect(parseReportRange("2026-03-02", "2026-03-01")).toMatchObject({
      ok: false,
      path: "to",
      message: expect.stringContaining("before from"),
    });
    expect(parseReportRange("2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z")).toMatchObject({
      ok: false,
      path: "to",
    });
    // 366 days is the most a report spans; the audit listing passes Infinity.
    expect(parseReportRange("2025-01-01", "2026-01-01")).toMatchObject({ ok: true });
    expect(parseReportRange("2025-01-01", "2026-01-02")).toMatchObject({
      ok: false,
      path: "to",
      message: expect.stringContaining(`at most ${MAX_REPORT_RANGE_DAYS}`),
    });
    expect(parseReportRange("2020-01-01", "2026-01-02", { maxDays: Number.POSITIVE_INFINITY })).toMatchObject(
      { ok: true },
    );
  });
});
