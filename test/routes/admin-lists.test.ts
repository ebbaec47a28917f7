import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { CRON_EVERY_MINUTE } from "../../src/cron";
import { PAYMENT_REVIEW_PAGE_MAX } from "../../src/db/payments";
import { paymentReviews, payments } from "../../src/db/schema";
import type { OperatorRole } from "../../src/types/domain";
import { db, operatorToken, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { adminOperator } from "../support/staff";
import { uniqueUser } from "../support/tokens";
import { deliver, newMessageId, newPaymentId, paymentFor, pendingOrder } from "../support/webhooks";
import { runCron } from "../support/worker";

// GET /admin/products and GET /admin/payments/reviews: the lists behind the /admin page.

interface Problem {
  code: string;
  status: number;
}

interface AdminProductBody {
  id: string;
  name: string;
  sellable: number;
  reserved: number;
  sold: number;
  available: number;
  active: boolean;
}

interface ReviewBody {
  payment_id: string;
  reference: string;
  reason: "amount_mismatch" | "refund_owed";
  amount_cents: number;
  currency: string;
  expected_amount_cents: number | null;
  expected_currency: string | null;
  received_at: string;
}

const NON_ADMIN_ROLES = ["gate", "pos", "analyst", "supervisor"] satisfies OperatorRole[];

/** Follows next_cursor from the first page to the last, checking each page's size on the way. */
async function everyPage<T>(path: string, key: string, limit: number, between?: () => Promise<void>) {
  const { token } = await adminOperator();
  const seen: T[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1_000; page++) {
    const query =
      cursor === null ? `?limit=${limit}` : `?limit=${limit}&cursor=${encodeURIComponent(cursor)}`;
    const answer = await callJson<Record<string, unknown>>("GET", `${path}${query}`, { token });
    if (answer.status !== 200) throw new Error(`${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    const rows = answer.body[key] as T[];
    if (rows.length > limit) throw new Error(`${path}: ${rows.length} rows for limit ${limit}`);
    cursor = answer.body.next_cursor as string | null;
    if (cursor !== null && rows.length !== limit) throw new Error(`${path}: a short page before the end`);
    seen.push(...rows);
    if (cursor === null) return seen;
    await between?.();
  }
  throw new Error(`${path}: no last page`);
}

async function expectAdminOnly(expect: import("vitest").ExpectStatic, path: string) {
  for (const role of NON_ADMIN_ROLES) {
    const { token } = await operatorToken([role], ["evt-lists"]);
    const answer = await callJson<Problem>("GET", path, { token });
    expect({ status: answer.status, code: answer.body.code }, role).toEqual({
      status: 403,
      code: "forbidden",
    });
    expect(answer.headers.get("content-type")).toContain("application/problem+json");
  }
  const anonymous = await callJson<Problem>("GET", path);
  expect({ status: anonymous.status, code: anonymous.body.code }).toEqual({
    status: 401,
    code: "unauthenticated",
  });
}

describe("GET /admin/products", () => {
  it("403 forbidden for every non-admin role, 401 without a token", async ({ expect }) => {
    await expectAdminOnly(expect, "/admin/products");
  });

  it("pages through every product exactly once, in id order, inactive ones and inventory included", async ({
    expect,
  }) => {
    const { token } = await adminOperator();
    const mine = await Promise.all(
      Array.from({ length: 5 }, (_, index) => seedProduct({ sellable: 10 + index })),
    );
    const [reservedFrom, retired] = mine;
    if (!reservedFrom || !retired) throw new Error("no products");
    await pendingOrder(uniqueUser(), [{ product_id: reservedFrom.id, quantity: 3 }]);
    const patched = await callJson("PATCH", `/admin/products/${retired.id}`, {
      token,
      body: { active: false },
    });
    expect(patched.status).toBe(200);

    const seen = await everyPage<AdminProductBody>("/admin/products", "products", 2);
    const ids = seen.map((product) => product.id);
    const { results } = await env.DB.prepare("SELECT id FROM products ORDER BY id").all<{ id: string }>();
    expect(ids).toEqual(results.map((row) => row.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(seen.find((product) => product.id === reservedFrom.id)).toMatchObject({
      sellable: 10,
      reserved: 3,
      sold: 0,
      available: 7,
      active: true,
    });
    expect(seen.find((product) => product.id === retired.id)).toMatchObject({ active: false, sellable: 11 });
  });

  it("400 validation_failed for a bad limit or cursor", async ({ expect }) => {
    const { token } = await adminOperator();
    for (const query of ["limit=0", "limit=201", "limit=-1", "limit=abc", "cursor="]) {
      const answer = await callJson<Problem>("GET", `/admin/products?${query}`, { token });
      expect({ status: answer.status, code: answer.body.code }, query).toEqual({
        status: 400,
        code: "validation_failed",
      });
    }
  });
});

async function allReviews(): Promise<ReviewBody[]> {
  return everyPage<ReviewBody>("/admin/payments/reviews", "reviews", PAYMENT_REVIEW_PAGE_MAX);
}

/** A review row straight into D1, for positions the webhook cannot make on demand (equal times). */
function insertMismatch(paymentId: string, receivedAt: string) {
  return db().insert(paymentReviews).values({
    paymentId,
    webhookId: newMessageId(),
    reference: "ord_inserted",
    reason: "amount_mismatch",
    amountCents: 1,
    currency: "EUR",
    expectedAmountCents: 2,
    expectedCurrency: "EUR",
    receivedAt,
  });
}

function insertRefundOwed(paymentId: string, receivedAt: string) {
  return db().insert(payments).values({
    paymentId,
    webhookId: newMessageId(),
    reference: "ord_inserted",
    status: "SUCCESS",
    amountCents: 3,
    currency: "EUR",
    outcome: "ignored",
    needsRefund: true,
    receivedAt,
  });
}

describe("GET /admin/payments/reviews", () => {
  it("403 forbidden for every non-admin role, 401 without a token", async ({ expect }) => {
    await expectAdminOnly(expect, "/admin/payments/reviews");
  });

  it("a SUCCESS for an expired order appears as refund_owed", async ({ expect }) => {
    const product = await seedProduct({ sellable: 5 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 2 }]);
    await runCron(CRON_EVERY_MINUTE, Date.parse(order.expires_at) + 60_000);
    const payment = paymentFor(order);
    expect((await deliver(payment)).body).toEqual({ received: true, outcome: "ignored" });

    const listed = (await allReviews()).filter((review) => review.payment_id === payment.payment_id);
    expect(listed).toEqual([
      {
        payment_id: payment.payment_id,
        reference: order.order_id,
        reason: "refund_owed",
        amount_cents: order.amount_due_cents,
        currency: "EUR",
        expected_amount_cents: null,
        expected_currency: null,
        received_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        refund_status: null,
      },
    ]);
  });

  it("an amount mismatch appears once with what was due; a paid order's settled payment does not", async ({
    expect,
  }) => {
    const product = await seedProduct({ sellable: 5, price_cents: 1_200 });
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
    const short = paymentFor(order, { amount_cents: 1_100 });
    expect((await deliver(short)).status).toBe(422);
    expect((await deliver(short)).status).toBe(422);
    const paid = paymentFor(order);
    expect((await deliver(paid)).body).toMatchObject({ outcome: "processed" });

    const reviews = await allReviews();
    expect(reviews.filter((review) => review.payment_id === short.payment_id)).toEqual([
      {
        payment_id: short.payment_id,
        reference: order.order_id,
        reason: "amount_mismatch",
        amount_cents: 1_100,
        currency: "EUR",
        expected_amount_cents: 1_200,
        expected_currency: "EUR",
        received_at: expect.any(String),
        refund_status: null,
      },
    ]);
    expect(reviews.map((review) => review.payment_id)).not.toContain(paid.payment_id);
  });

  it("pages newest first without gaps or duplicates, through equal times and a payment in both sources", async ({
    expect,
  }) => {
    const sameTime = "2026-03-01T12:00:00.000Z";
    const shared = newPaymentId();
    await insertMismatch(shared, sameTime);
    await insertRefundOwed(shared, sameTime);
    for (let index = 0; index < 5; index++) {
      await insertMismatch(newPaymentId(), sameTime);
      await insertRefundOwed(newPaymentId(), `2026-03-01T12:00:0${index}.000Z`);
    }
    const everything = await allReviews();
    const key = (review: ReviewBody) => `${review.received_at}|${review.payment_id}|${review.reason}`;
    expect(everything.length).toBeGreaterThanOrEqual(12);
    expect(
      everything.filter((review) => review.payment_id === shared).map((review) => review.reason),
    ).toEqual(["refund_owed", "amount_mismatch"]);

    // New reviews arriving between pages are newer than the cursor: they never push a row off a page.
    let arrivals = 0;
    for (const limit of [1, 2, 5]) {
      const paged = await everyPage<ReviewBody>("/admin/payments/reviews", "reviews", limit, async () => {
        arrivals++;
        await insertMismatch(newPaymentId(), new Date().toISOString());
      });
      const before = new Set(everything.map(key));
      const pagedKeys = paged.map(key);
      expect(new Set(pagedKeys).size, `limit ${limit}`).toBe(pagedKeys.length);
      expect(
        pagedKeys.filter((entry) => before.has(entry)),
        `limit ${limit}`,
      ).toEqual(everything.map(key));
      const times = paged.map((review) => review.received_at);
      expect(times).toEqual([...times].sort().reverse());
    }
    expect(arrivals).toBeGreaterThan(0);
    const [total] = (
      await env.DB.prepare(
        "SELECT (SELECT count(*) FROM payment_reviews) + (SELECT count(*) FROM payments WHERE needs_refund = 1) AS n",
      ).all<{ n: number }>()
    ).results;
    expect((await allReviews()).length).toBe(total?.n);
  });

  it("400 validation_failed for a bad limit or a cursor it did not issue", async ({ expect }) => {
    const { token } = await adminOperator();
    for (const query of [
      "limit=0",
      `limit=${PAYMENT_REVIEW_PAGE_MAX + 1}`,
      "limit=abc",
      "cursor=",
      "cursor=pay_123",
      `cursor=${btoa(JSON.stringify(["2026-01-01T00:00:00Z", "pay_1", "other"]))}`,
      `cursor=${"a".repeat(600)}`,
    ]) {
      const answer = await callJson<Problem>("GET", `/admin/payments/reviews?${query}`, { token });
      expect({ status: answer.status, code: answer.body.code }, query).toEqual({
        status: 400,
        code: "validation_failed",
      });
    }
  });
});
