import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Stripe from "stripe";

// Stripe as a browser and the Worker meet it, on localhost: the API the Worker calls through
// STRIPE_API_BASE (Checkout Sessions, with Stripe's idempotency keys), a hosted page the buyer is sent to,
// and, when the buyer pays there, a `checkout.session.completed` webhook signed with the stripe package's
// own signer, delivered to the Worker before the buyer is sent back to `success_url`.

export const E2E_STRIPE_SECRET_KEY = "sk_test_e2eFakeStripeKey0123456789";
export const E2E_STRIPE_WEBHOOK_SECRET = "whsec_e2eFakeStripeWebhookSecret0123456789";

interface Session {
  id: string;
  object: "checkout.session";
  client_reference_id: string;
  amount_total: number;
  currency: string;
  payment_intent: string;
  payment_status: "unpaid" | "paid";
  status: "open" | "complete" | "expired";
  url: string;
  success_url: string;
  cancel_url: string;
  expires_at: number;
}

export interface FakeStripeServer {
  url: string;
  sessions: Map<string, Session>;
  /** Idempotency keys the Worker sent, in order. */
  keys: string[];
  stop(): Promise<void>;
}

const signer = new Stripe(E2E_STRIPE_SECRET_KEY);

async function bodyOf(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export async function startFakeStripe(): Promise<FakeStripeServer> {
  const sessions = new Map<string, Session>();
  const answered = new Map<string, unknown>();
  const keys: string[] = [];
  let origin = "";

  async function pay(session: Session): Promise<void> {
    session.status = "complete";
    session.payment_status = "paid";
    const payload = JSON.stringify({
      id: `evt_${randomUUID().replaceAll("-", "")}`,
      object: "event",
      type: "checkout.session.completed",
      created: Math.floor(Date.now() / 1000),
      data: { object: session },
    });
    const signature = signer.webhooks.generateTestHeaderString({
      payload,
      secret: E2E_STRIPE_WEBHOOK_SECRET,
    });
    const delivered = await fetch(new URL("/payments/stripe/webhook", session.success_url), {
      method: "POST",
      headers: { "content-type": "application/json", "stripe-signature": signature },
      body: payload,
    });
    if (!delivered.ok) throw new Error(`webhook refused: ${delivered.status} ${await delivered.text()}`);
  }

  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", origin);
    try {
      if (request.method === "POST" && url.pathname === "/v1/checkout/sessions") {
        const key = String(request.headers["idempotency-key"] ?? "");
        keys.push(key);
        const form = new URLSearchParams(await bodyOf(request));
        const earlier = key ? answered.get(key) : undefined;
        if (earlier) return json(response, 200, earlier);
        const id = `cs_test_${randomUUID().replaceAll("-", "")}`;
        const session: Session = {
          id,
          object: "checkout.session",
          client_reference_id: form.get("client_reference_id") ?? "",
          amount_total: Number(form.get("line_items[0][price_data][unit_amount]")),
          currency: form.get("line_items[0][price_data][currency]") ?? "",
          payment_intent: `pi_test_${randomUUID().replaceAll("-", "")}`,
          payment_status: "unpaid",
          status: "open",
          url: `${origin}/pay/${id}`,
          success_url: form.get("success_url") ?? "",
          cancel_url: form.get("cancel_url") ?? "",
          expires_at: Number(form.get("expires_at")),
        };
        sessions.set(id, session);
        if (key) answered.set(key, session);
        return json(response, 200, session);
      }
      const page = /^\/pay\/([\w]+)$/.exec(url.pathname);
      const session = page ? sessions.get(page[1] ?? "") : undefined;
      if (page && !session) return json(response, 404, { error: { type: "invalid_request_error" } });
      if (session && request.method === "GET") {
        const amount = new Intl.NumberFormat("en", { style: "currency", currency: session.currency }).format(
          session.amount_total / 100,
        );
        response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Fake Stripe Checkout</title></head><body>
<h1>Fake Stripe Checkout</h1><p id="amount">Pay ${escapeHtml(amount)}</p>
<form method="post"><button type="submit">Pay ${escapeHtml(amount)}</button></form>
<a href="${escapeHtml(session.cancel_url)}">Back</a></body></html>`);
        return;
      }
      if (session && request.method === "POST") {
        await pay(session);
        response.writeHead(303, { location: session.success_url }).end();
        return;
      }
      json(response, 404, { error: { type: "invalid_request_error", message: `no route ${url.pathname}` } });
    } catch (error) {
      json(response, 500, { error: { type: "api_error", message: String(error) } });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: origin,
    sessions,
    keys,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
