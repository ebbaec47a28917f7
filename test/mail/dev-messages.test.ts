import { decodeJwt } from "jose";
import { describe, it } from "vitest";
import { recordSentEmail } from "../../src/db/email-messages";
import { developmentFetch } from "../support/development-app";
import { eventually } from "../support/eventually";
import { db, seedProduct } from "../support/fixtures";
import { call, callJson } from "../support/http";

// GET /dev/messages: the development page of what the mailer sent. The suite runs with ENVIRONMENT=test,
// where it must not exist; the development behaviour is driven through support/development-app.ts.

const HOSTILE = `<img src=x onerror="alert('x')"> & co`;
const articles = (page: string) => page.split("<article>").length - 1;

describe("GET /dev/messages", () => {
  it("outside development answers exactly like an unknown route", async ({ expect }) => {
    const unknown = await callJson("GET", "/no-such-page");
    const page = await call("GET", "/dev/messages");
    expect(page.status).toBe(404);
    expect(await page.json()).toEqual(unknown.body);
  });

  it("in development lists the newest messages first, at most 50, every value escaped", async ({
    expect,
  }) => {
    // Long ago: a real receipt mailed by another test of this file stays newer than all of these.
    const base = Date.parse("2001-01-01T00:00:00.000Z");
    for (let i = 0; i < 52; i++) {
      await recordSentEmail(db(), {
        message: {
          id: `rct_page_${i}`,
          to: i === 51 ? `"${HOSTILE}"@example.test` : `buyer-${i}@example.test`,
          subject: i === 51 ? `Subject ${HOSTILE}` : `Message ${i}`,
          text: i === 51 ? `Body ${HOSTILE}` : `Text ${i}`,
          html: "<p>unused</p>",
        },
        provider: "log",
        providerMessageId: null,
        sentAt: new Date(base + i * 1_000),
      });
    }
    const response = await developmentFetch("GET", "/dev/messages");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/html");
    expect(response.headers.get("cache-control")).toBe("no-store");
    const page = await response.text();
    expect(articles(page)).toBe(50);
    expect(page).not.toContain(HOSTILE);
    expect(page).not.toContain("<img");
    expect(page).toContain("Subject &lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt; &amp; co");
    expect(page).toContain("Body &lt;img");
    // Newest first: the hostile one (i = 51), then 50, …; the two oldest are past the limit.
    expect(page.indexOf("rct_page_51")).toBeLessThan(page.indexOf("rct_page_50"));
    expect(page.indexOf("rct_page_50")).toBeLessThan(page.indexOf("rct_page_49"));
    expect(page).not.toContain("rct_page_0<");
    expect(page).not.toContain("rct_page_1<");
  });

  it("a demo buyer's paid order is mailed to <user id>@example.test and shows up with its ticket codes", async ({
    expect,
  }) => {
    const issued = await developmentFetch("POST", "/dev/buyer-token", { body: { user_id: "mail:demo" } });
    const { token, user_id: userId } = (await issued.json()) as { token: string; user_id: string };
    expect(decodeJwt(token).email).toBe("mail-demo@example.test");

    const product = await seedProduct({ name: "Dev <Pass>", price_cents: 1_100 });
    const order = await developmentFetch("POST", "/orders", {
      token,
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: product.id, quantity: 2 }] },
    });
    expect(order.status).toBe(201);
    const { order_id: orderId } = (await order.json()) as { order_id: string };
    const paid = await developmentFetch("POST", "/dev/simulate-payment", {
      token,
      body: { order_id: orderId },
    });
    expect(paid.status).toBe(200);
    const tickets = (await (await developmentFetch("GET", "/my/tickets", { token })).json()) as {
      tickets: { code: string; order_id: string }[];
    };
    const codes = tickets.tickets
      .filter((ticket) => ticket.order_id === orderId)
      .map((ticket) => ticket.code);
    expect(codes).toHaveLength(2);

    // The real queue's consumer mails the receipt (the log mailer) within a few seconds.
    const page = await eventually(
      async () => (await developmentFetch("GET", "/dev/messages")).text(),
      (text) => text.includes(orderId),
      20_000,
    );
    expect(page).toContain(`to mail-demo@example.test`);
    expect(page).toContain(`Your tickets: order ${orderId}`);
    for (const code of codes) expect(page).toContain(code);
    expect(page).toContain("Dev &lt;Pass&gt;");
    expect(userId).toBe("mail:demo");
  });
});
