import { type ExecutionContext, Hono } from "hono";
import { SignJWT } from "jose";
import { nanoid } from "nanoid";
import { Webhook } from "standardwebhooks";
import { z } from "zod";
import { getDb } from "../db/client";
import { issueEnrollmentCode } from "../db/devices";
import { recentEmails } from "../db/email-messages";
import type { Env } from "../env";
import { ApiError } from "../errors";
import { requireBuyer } from "../http/auth";
import type { AppEnv } from "../http/context";
import { messagesPage } from "../mail/messages-page";

// Local-development conveniences behind the reference pages' "Continue as a demo user" and "Simulate
// payment" buttons. They answer only when ENVIRONMENT is "development" (`npm run dev`); anywhere else every
// /dev path is the same 404 as an unknown route. Plain Hono routes, not createRoute(), so they never
// appear in the OpenAPI document: they are not part of the contract.

/** Demo sessions last a working day; the page asks for a new one when it lapses. */
const DEMO_TOKEN_TTL_SECONDS = 12 * 60 * 60;
const MAX_ID_LENGTH = 128;

type AppFetch = (request: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response>;

const BuyerTokenRequest = z
  .object({ user_id: z.string().regex(/^[A-Za-z0-9._:@-]{1,64}$/) })
  .partial()
  .strict();

const SimulatePaymentRequest = z
  .object({
    order_id: z.string().startsWith("ord_").max(MAX_ID_LENGTH).optional(),
    topup_id: z.string().startsWith("top_").max(MAX_ID_LENGTH).optional(),
    amount_cents: z.number().int().positive().max(10_000_000).optional(),
    status: z.enum(["SUCCESS", "FAILED"]).default("SUCCESS"),
  })
  .strict()
  .refine(
    (body) => Boolean(body.order_id) !== Boolean(body.topup_id),
    "Give exactly one of order_id, topup_id",
  )
  .refine((body) => !body.topup_id || body.amount_cents !== undefined, {
    message: "A top-up needs amount_cents (the API has no top-up lookup)",
    path: ["amount_cents"],
  });

/** A demo user's address: `<user id>@example.test` (a reserved domain), with `:` and `@` made `-`. */
function demoEmail(userId: string): string {
  return `${userId.replace(/[^A-Za-z0-9._-]/g, "-")}@example.test`;
}

/** The development mail page lists this many of the newest messages. */
const DEV_MESSAGES_SHOWN = 50;

async function parseBody<T extends z.ZodType>(request: Request, schema: T): Promise<z.infer<T>> {
  const text = await request.text();
  let value: unknown = {};
  try {
    if (text.trim()) value = JSON.parse(text);
  } catch {
    throw new ApiError("invalid_json");
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const errors = parsed.error.issues.map((issue) => ({
      path: issue.path.length > 0 ? issue.path.map(String).join(".") : "(root)",
      message: issue.message,
    }));
    throw new ApiError("validation_failed", `${errors.length} field(s) failed validation`, { errors });
  }
  return parsed.data;
}

/**
 * The dev router. `appFetch` is the whole app's fetch: a simulated payment travels through the real,
 * signature-checking /payments/webhook, and an order's amount is read through the real GET /orders/{id}
 * with the caller's own token (so only the order's owner can pay it this way).
 */
export function devRoutes(appFetch: AppFetch) {
  const router = new Hono<AppEnv>();

  router.use("/dev/*", async (c, next) => {
    if (c.get("config").environment !== "development") throw new ApiError("not_found", "No such route");
    await next();
  });

  router.post("/dev/buyer-token", async (c) => {
    const config = c.get("config");
    if (!config.buyerJwtSecret) {
      throw new ApiError("service_unavailable", "Demo sign-in needs BUYER_JWT_SECRET (HS256 buyer tokens)");
    }
    const body = await parseBody(c.req.raw, BuyerTokenRequest);
    const userId = body.user_id ?? `demo-${nanoid(10)}`;
    const now = Math.floor(Date.now() / 1000);
    // The `email` claim an identity provider would add: demo receipts land on /dev/messages.
    const token = await new SignJWT({ email: demoEmail(userId) })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(userId)
      .setIssuer(config.buyerJwtIssuer)
      .setAudience(config.buyerJwtAudience)
      .setIssuedAt(now)
      .setExpirationTime(now + DEMO_TOKEN_TTL_SECONDS)
      .sign(new TextEncoder().encode(config.buyerJwtSecret));
    return c.json({ token, user_id: userId, expires_in: DEMO_TOKEN_TTL_SECONDS }, 201, {
      "cache-control": "no-store",
    });
  });

  router.post("/dev/simulate-payment", requireBuyer, async (c) => {
    const config = c.get("config");
    if (!config.paymentWebhookSecret) {
      throw new ApiError("service_unavailable", "Simulated payments need PAYMENT_WEBHOOK_SECRET");
    }
    const body = await parseBody(c.req.raw, SimulatePaymentRequest);
    const origin = new URL(c.req.url).origin;
    let reference: string;
    let amountCents: number;
    let currency = config.currency;
    if (body.order_id) {
      const order = await appFetch(
        new Request(`${origin}/orders/${encodeURIComponent(body.order_id)}`, {
          headers: { authorization: c.req.header("authorization") ?? "" },
        }),
        c.env,
        c.executionCtx,
      );
      if (!order.ok) return order;
      const due = (await order.json()) as { amount_due_cents: number; currency: string };
      reference = body.order_id;
      amountCents = body.amount_cents ?? due.amount_due_cents;
      currency = due.currency;
    } else {
      reference = body.topup_id ?? "";
      amountCents = body.amount_cents ?? 0;
    }
    const payload = JSON.stringify({
      payment_id: `pay_dev_${nanoid(16)}`,
      reference,
      status: body.status,
      amount_cents: amountCents,
      currency,
    });
    const webhookId = `msg_dev_${nanoid(16)}`;
    const sentAt = new Date();
    const signature = new Webhook(config.paymentWebhookSecret).sign(webhookId, sentAt, payload);
    return appFetch(
      new Request(`${origin}/payments/webhook`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "webhook-id": webhookId,
          "webhook-timestamp": String(Math.floor(sentAt.getTime() / 1000)),
          "webhook-signature": signature,
        },
        body: payload,
      }),
      c.env,
      c.executionCtx,
    );
  });

  // The pages enroll the seeded devices (dev-gate-1, dev-pos-1) without an admin handing out a code: the
  // page asks for one here, then enrolls its own key through the real POST /devices/enroll.
  router.post("/dev/devices/:id/enrollment", async (c) => {
    const deviceId = c.req.param("id");
    if (deviceId.length > MAX_ID_LENGTH) throw new ApiError("not_found", "No such device");
    const code = await issueEnrollmentCode(getDb(c.env.DB), c.env.EVENTS, deviceId, "system:dev", new Date());
    if (!code) throw new ApiError("not_found", "No such device");
    return c.json(code, 201, { "cache-control": "no-store" });
  });

  // What the mailer sent (with MAIL_PROVIDER=log, all that happened to it): the receipts a demo produced.
  router.get("/dev/messages", async (c) => {
    const messages = await recentEmails(getDb(c.env.DB), DEV_MESSAGES_SHOWN);
    return c.html(messagesPage(messages), 200, { "cache-control": "no-store" });
  });

  return router;
}
