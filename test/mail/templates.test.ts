import { describe, type ExpectStatic, it } from "vitest";
import {
  escapeHtml,
  formatMoney,
  orderReceiptEmail,
  posRefundReceiptEmail,
  posSaleReceiptEmail,
  ticketsPageUrl,
  topupReceiptEmail,
} from "../../src/mail/templates";

const HOSTILE = `<script>alert("x")</script> & 'friends'`;

/** Every `<`, `>`, `"` or `'` of `value` must arrive escaped: the raw text must not appear at all. */
function expectEscaped(expect: ExpectStatic, html: string, value: string) {
  expect(html).not.toContain(value);
  expect(html).toContain(escapeHtml(value));
}

describe("receipt templates", () => {
  it("formats money in the receipt's currency, minor units by the currency's own digits", ({ expect }) => {
    expect(formatMoney(2_400, "EUR")).toBe("€24.00");
    expect(formatMoney(5, "EUR")).toBe("€0.05");
    expect(formatMoney(123_456, "GBP")).toBe("£1,234.56");
    // No minor unit in yen, three in dinars: the amount is read in the currency's own digits.
    expect(formatMoney(2_400, "JPY")).toBe("JP¥2,400");
    expect(formatMoney(1_500, "KWD")).toMatch(/^KWD\s1\.500$/);
  });

  it("an order: lines, total, credits, amount paid, ticket codes and the link; every value escaped", ({
    expect,
  }) => {
    const email = orderReceiptEmail({
      receiptId: "rct_1",
      orderId: "ord_1",
      currency: "EUR",
      lines: [
        { product_id: "prd_a", product_name: HOSTILE, quantity: 2, unit_price_cents: 1_200 },
        { product_id: "prd_b", product_name: "Ferry day", quantity: 1, unit_price_cents: 550 },
      ],
      totalCents: 2_950,
      amountPaidCents: 2_000,
      paidAt: "2026-03-14T09:26:53.000Z",
      tickets: [
        { code: "AAAA", productId: "prd_a" },
        { code: "BBBB", productId: "prd_a" },
        { code: "CCCC", productId: "prd_b" },
      ],
      ticketsUrl: ticketsPageUrl("https://tickets.example.com"),
    });
    expect(email.subject).toBe("Your tickets: order ord_1");
    for (const body of [email.text, email.html]) {
      expect(body).toContain("€24.00"); // 2 × €12.00
      expect(body).toContain("€5.50");
      expect(body).toContain("€29.50"); // total
      expect(body).toContain("€9.50"); // credits used
      expect(body).toContain("€20.00"); // paid
      expect(body).toContain("14 Mar 2026, 09:26 UTC");
      expect(body).toContain("AAAA, BBBB");
      expect(body).toContain("CCCC");
      expect(body).toContain("https://tickets.example.com/#tickets");
      expect(body).toContain("rct_1");
    }
    expect(email.text).toContain(HOSTILE);
    expectEscaped(expect, email.html, HOSTILE);
    expect(email.html).toContain('<a href="https://tickets.example.com/#tickets">');
  });

  it("an order paid without credits has no credits line; without a base URL, no link", ({ expect }) => {
    const email = orderReceiptEmail({
      receiptId: "rct_2",
      orderId: "ord_2",
      currency: "EUR",
      lines: [{ product_id: "prd_a", product_name: "Pass", quantity: 1, unit_price_cents: 1_000 }],
      totalCents: 1_000,
      amountPaidCents: 1_000,
      paidAt: "2026-03-14T09:26:53.000Z",
      tickets: [],
      ticketsUrl: ticketsPageUrl(undefined),
    });
    for (const body of [email.text, email.html]) {
      expect(body).not.toContain("credits");
      expect(body).not.toContain("#tickets");
      expect(body).not.toContain("Ticket codes");
    }
  });

  it("only http(s) base URLs become links", ({ expect }) => {
    expect(ticketsPageUrl("https://a.example/app/")).toBe("https://a.example/#tickets");
    expect(ticketsPageUrl("javascript:alert(1)")).toBeUndefined();
    expect(ticketsPageUrl("not a url")).toBeUndefined();
  });

  it("a top-up: amount and time", ({ expect }) => {
    const email = topupReceiptEmail({
      receiptId: "rct_t",
      amountCents: 1_500,
      currency: "EUR",
      createdAt: "2026-01-02T03:04:05.000Z",
    });
    expect(email.subject).toBe("Wallet top-up of €15.00");
    expect(email.text).toContain("2 Jan 2026, 03:04 UTC");
    expect(email.html).toContain("€15.00");
  });

  it("a POS sale: amount, event, till, time and reference, escaped", ({ expect }) => {
    const email = posSaleReceiptEmail({
      receiptId: "rct_s",
      amountCents: 450,
      currency: "EUR",
      eventId: "evt-<b>",
      deviceId: "dev-pos-1",
      reference: HOSTILE,
      createdAt: "2026-01-02T03:04:05.000Z",
    });
    expect(email.subject).toBe("You paid €4.50 with your wallet");
    for (const value of ["evt-<b>", "dev-pos-1", HOSTILE, "2 Jan 2026, 03:04 UTC"]) {
      expect(email.text).toContain(value);
    }
    expectEscaped(expect, email.html, HOSTILE);
    expectEscaped(expect, email.html, "evt-<b>");
  });

  it("a POS refund: what was refunded and which sale it reverses", ({ expect }) => {
    const email = posRefundReceiptEmail({
      receiptId: "rct_r",
      amountCents: 200,
      currency: "EUR",
      eventId: "evt-demo",
      reference: null,
      createdAt: "2026-01-02T05:00:00.000Z",
      sale: { receiptId: "rct_s", amountCents: 450, createdAt: "2026-01-02T03:04:05.000Z" },
    });
    expect(email.subject).toBe("Refund of €2.00 to your wallet");
    for (const body of [email.text, email.html]) {
      expect(body).toContain("rct_s");
      expect(body).toContain("€4.50");
      expect(body).toContain("2 Jan 2026, 03:04 UTC");
      expect(body).not.toContain("Reference");
    }
    // The sale's own receipt not written yet: the refund still names it.
    const early = posRefundReceiptEmail({
      receiptId: "rct_r",
      amountCents: 200,
      currency: "EUR",
      eventId: null,
      reference: null,
      createdAt: "2026-01-02T05:00:00.000Z",
      sale: { receiptId: "rct_s" },
    });
    expect(early.text).toContain("rct_s");
    expect(early.text).not.toContain("Sale amount");
  });
});
