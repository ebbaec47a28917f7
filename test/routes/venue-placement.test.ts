import { describe, it } from "vitest";
import { countingApp } from "../support/counting-env";
import { operatorToken, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { gateSession } from "../support/tickets";
import { uniqueUser } from "../support/tokens";
import { deliver, paymentFor, pendingOrder } from "../support/webhooks";

// A product names its venue's region; each of its tickets' objects is created near it (a Durable Objects
// location hint), whoever touches it first: the buyer's list passes it for each ticket, and the ticket's QR
// tokens carry the region, so a gate's scan passes it too (counted at the binding: support/counting-env.ts). Where an object then lives cannot be observed locally; that
// the hint is given is what is tested.

interface AdminProductBody {
  id: string;
  venue_region: string | null;
  code?: string;
}

describe("a product's venue region", () => {
  it("is set, changed and cleared by an admin; anything but a location hint is refused", async ({
    expect,
  }) => {
    const admin = await operatorToken(["admin"]);
    const created = await callJson<AdminProductBody>("POST", "/admin/products", {
      token: admin.token,
      body: {
        name: "Canal boat day",
        price_cents: 900,
        sellable: 10,
        functions: [{ function: "boat", uses: 1 }],
        venue_region: "weur",
      },
    });
    expect(created.status).toBe(201);
    expect(created.body.venue_region).toBe("weur");
    const moved = await callJson<AdminProductBody>("PATCH", `/admin/products/${created.body.id}`, {
      token: admin.token,
      body: { venue_region: "apac" },
    });
    expect(moved.body.venue_region).toBe("apac");
    const cleared = await callJson<AdminProductBody>("PATCH", `/admin/products/${created.body.id}`, {
      token: admin.token,
      body: { venue_region: null },
    });
    expect(cleared.body.venue_region).toBeNull();
    const refused = await callJson<AdminProductBody>("PATCH", `/admin/products/${created.body.id}`, {
      token: admin.token,
      body: { venue_region: "mars" },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.code).toBe("validation_failed");
  });

  it("the buyer's list asks each ticket's object with its venue's hint, and none without a venue", async ({
    expect,
  }) => {
    const app = countingApp();
    const userId = uniqueUser();
    const amsterdam = await seedProduct({ venue_region: "weur", functions: [{ function: "tram", uses: 3 }] });
    const anywhere = await seedProduct({ functions: [{ function: "bus", uses: 3 }] });
    const order = await pendingOrder(userId, [
      { product_id: amsterdam.id, quantity: 2 },
      { product_id: anywhere.id, quantity: 1 },
    ]);
    expect((await deliver(paymentFor(order))).status).toBe(200);

    const mine = await app.call("GET", "/my/tickets", { token: order.token });
    expect(mine.status).toBe(200);
    expect([...mine.cost.placements].sort()).toEqual([null, "weur", "weur"].sort());
  });

  it("a scan creates the ticket's object near its venue, named by the signed token", async ({ expect }) => {
    const app = countingApp();
    const gate = await gateSession();
    const placedBy = async (product: { id: string }) => {
      const order = await pendingOrder(uniqueUser(), [{ product_id: product.id, quantity: 1 }]);
      expect((await deliver(paymentFor(order))).status).toBe(200);
      const mine = await callJson<{ tickets: { code: string }[] }>("GET", "/my/tickets", {
        token: order.token,
      });
      const code = mine.body.tickets[0]?.code ?? "";
      const qr = await callJson<{ token: string }>("POST", `/tickets/${code}/qr-token`, {
        token: order.token,
      });
      const scanned = await app.call("POST", "/tickets/scan", {
        token: gate.token,
        body: { qr_token: qr.body.token, function: "tram", session_id: gate.sessionId },
      });
      expect(scanned.status).toBe(200);
      return scanned.cost.placements;
    };
    const functions = [{ function: "tram", uses: 3 }];
    expect(await placedBy(await seedProduct({ venue_region: "apac", functions }))).toEqual(["apac"]);
    expect(await placedBy(await seedProduct({ functions }))).toEqual([null]);
  });
});
