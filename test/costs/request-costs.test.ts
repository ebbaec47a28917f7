import { describe, it } from "vitest";
import { countingApp } from "../support/counting-env";
import { seedProduct } from "../support/fixtures";
import { gateSession, paidTickets, qrToken } from "../support/tickets";
import { buyerToken, uniqueUser } from "../support/tokens";
import { fundedWallet, posTill, walletQr } from "../support/wallet";
import { paymentFor, pendingOrder, signatureHeaders } from "../support/webhooks";

// What the hot paths cost in round trips once an isolate is warm (issue 19): D1 calls, object RPCs and
// queue sends made while answering, counted at the bindings. The first request of a kind may read what
// the isolate then caches (the gate's session, the catalog); the steady state is what a busy venue pays.

describe("round trips per request, warm isolate", () => {
  it("a scan: no D1 call and one call to the ticket's object", async ({ expect }) => {
    const app = countingApp();
    const [ticket] = await paidTickets([{ function: "bus", uses: 10 }]);
    if (!ticket) throw new Error("no ticket");
    const gate = await gateSession();
    const scan = async () =>
      app.call("POST", "/tickets/scan", {
        token: gate.token,
        body: { qr_token: await qrToken(ticket), function: "bus", session_id: gate.sessionId },
      });
    const cold = await scan();
    expect(cold.status).toBe(200);
    // The session (and the operator behind it) is read once and then cached by the isolate.
    expect(cold.cost.objects).toBe(1);
    expect(cold.cost.d1).toBeGreaterThanOrEqual(1);
    const warm = await scan();
    expect(warm.status).toBe(200);
    expect(warm.cost).toMatchObject({ d1: 0, d1Batches: 0, objects: 1, queueSends: 0 });
    // Nor does it open a D1 session: that happens at a request's first query.
    expect(warm.cost.sessions).toEqual([]);
  });

  it("a POS deduction: no D1 call and one call to the wallet's object", async ({ expect }) => {
    const app = countingApp();
    const till = await posTill();
    const wallet = await fundedWallet(10_000);
    const deduct = async () =>
      app.call("POST", "/pos/deductions", {
        token: till.token,
        idempotencyKey: crypto.randomUUID(),
        body: { qr_token: await walletQr(wallet.token), amount_cents: 100, session_id: till.sessionId },
      });
    expect((await deduct()).status).toBe(201);
    const warm = await deduct();
    expect(warm.status).toBe(201);
    expect(warm.cost).toMatchObject({ d1: 0, d1Batches: 0, objects: 1, queueSends: 0 });
  });

  it("an order: one D1 batch (reservation, order, idempotency record and the buyer's address together)", async ({
    expect,
  }) => {
    const app = countingApp();
    const product = await seedProduct();
    const buyer = await buyerToken(uniqueUser());
    const order = () =>
      app.call("POST", "/orders", {
        token: buyer,
        idempotencyKey: crypto.randomUUID(),
        body: { items: [{ product_id: product.id, quantity: 1 }] },
      });
    expect((await order()).status).toBe(201);
    const warm = await order();
    expect(warm.status).toBe(201);
    expect(warm.cost).toMatchObject({ d1: 1, d1Batches: 1, objects: 0, queueSends: 0 });
  });

  it("a payment webhook: three D1 round trips on the primary and the order.paid event, before it answers", async ({
    expect,
  }) => {
    const app = countingApp();
    const product = await seedProduct();
    const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 2 }]);
    const body = JSON.stringify(paymentFor(order));
    const paid = await app.call("POST", "/payments/webhook", {
      rawBody: body,
      headers: { "content-type": "application/json", ...signatureHeaders(body) },
    });
    expect(paid.status).toBe(200);
    // Read the order; settle it, issue its tickets and record the payment in one batch; mark its event
    // sent. All on the primary: a write starts its session there.
    expect(paid.cost).toMatchObject({ d1: 3, d1Batches: 2, objects: 0, queueSends: 1 });
    expect(paid.cost.sessions).toEqual(["first-primary"]);
  });

  // Issue 19: GET /my/tickets asks every active ticket's object for its counts, one RPC each, so that
  // "remaining_uses reflects every scan that has returned". The target was at most two calls whatever the
  // number of tickets; a holder object per buyer met it and was reverted, because every accepted scan then
  // paid an extra call (README, "The buyer's list"). This records the fan-out; flip it if that changes.
  it.fails("GET /my/tickets: at most two calls whatever the number of tickets", async ({ expect }) => {
    const app = countingApp();
    const [ticket] = await paidTickets([{ function: "bus", uses: 10 }], 5);
    if (!ticket) throw new Error("no ticket");
    const mine = await app.call("GET", "/my/tickets", { token: ticket.buyerToken });
    expect(mine.status).toBe(200);
    expect(mine.cost.d1 + mine.cost.objects).toBeLessThanOrEqual(2);
  });
});
