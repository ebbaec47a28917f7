import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq, inArray } from "drizzle-orm";
import { afterEach, beforeEach, describe, it, vi } from "vitest";
import { receiptIdForOrder } from "../../src/db/receipts";
import { emailMessages, eventFailures, receipts, walletReceipts } from "../../src/db/schema";
import { receiptIdForTransaction } from "../../src/domain/ledger";
import { createMailer } from "../../src/mail/create-mailer";
import type { Mailer } from "../../src/mail/mailer";
import { RATE_LIMITED_RETRY_SECONDS } from "../../src/mail/resend-transport";
import { consumeEvents } from "../../src/queues/consumer";
import { failureRecorder } from "../../src/queues/dead-letters";
import type { EventMessage } from "../../src/queues/messages";
import { db, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { fakeResend, rememberEmail, resendConfig } from "../support/mail";
import { buyerToken, testEmailOf, uniqueUser } from "../support/tokens";
import { toppedUpEvent } from "../support/wallet";

// Receipts through the Resend mailer, with Resend's API replaced by a fake inside this isolate (the
// consumer is called directly, so it runs here and its fetch is the stub). The events are consumed by
// the test itself: the orders are created through the API but never paid through the webhook, so no real
// queue delivery (which would use the test environment's log mailer) races the test's batches.

const QUEUE = "passes-events";
const PUBLIC_BASE_URL = "https://passes.example";

let resend: ReturnType<typeof fakeResend>;
beforeEach(() => {
  resend = fakeResend();
});
afterEach(() => {
  resend.restore();
});

const resendMailer = (): Mailer => createMailer(resendConfig(), db());

let messageSeq = 0;
async function consume(bodies: unknown[], mailer: Mailer, attempts = 1) {
  const batch = createMessageBatch(
    QUEUE,
    bodies.map((body) => ({ id: `mail-${++messageSeq}`, timestamp: new Date(), attempts, body })),
  );
  const ctx = createExecutionContext();
  await consumeEvents(batch, {
    db: db(),
    mailer,
    publicBaseUrl: PUBLIC_BASE_URL,
    onRetry: failureRecorder(db(), QUEUE),
  });
  const result = await getQueueResult(batch, ctx);
  return { ...result, ids: batch.messages.map((m) => m.id) };
}

/**
 * An `order.paid` for a pending order created through the API. The order remembered its buyer's address
 * from the token's `email` claim, unless the token had none (`email: null`).
 */
async function orderPaid(options: { email?: null } = {}) {
  const userId = uniqueUser();
  const product = await seedProduct({ price_cents: 1_250 });
  const token = await buyerToken(userId, options);
  const created = await callJson<{ order_id: string }>("POST", "/orders", {
    token,
    idempotencyKey: crypto.randomUUID(),
    body: { items: [{ product_id: product.id, quantity: 2 }] },
  });
  if (created.status !== 201) throw new Error(`order failed: ${created.status}`);
  const message: EventMessage = {
    type: "order.paid",
    order_id: created.body.order_id,
    user_id: userId,
    paid_at: new Date().toISOString(),
  };
  return { message, userId, receiptId: receiptIdForOrder(created.body.order_id) };
}

const withAddress = () => orderPaid();

async function receiptRow(id: string) {
  return (await db().select().from(receipts).where(eq(receipts.id, id)))[0];
}

async function emailRecord(id: string) {
  return (await db().select().from(emailMessages).where(eq(emailMessages.id, id)))[0];
}

async function crashTrigger(name: string, sql: string): Promise<() => Promise<void>> {
  await env.DB.prepare(`CREATE TRIGGER ${name} ${sql}`).run();
  return async () => {
    await env.DB.prepare(`DROP TRIGGER ${name}`).run();
  };
}

const triggerName = () => `test_mail_${crypto.randomUUID().replaceAll("-", "")}`;

/** A crash between Resend's acceptance and the record of it: the email_messages insert fails. */
const crashAfterSend = (receiptId: string) =>
  crashTrigger(
    triggerName(),
    `BEFORE INSERT ON email_messages WHEN NEW.id = '${receiptId}' BEGIN SELECT RAISE(ABORT, 'crash after send'); END`,
  );

describe("receipts through Resend", () => {
  it("a redelivered order.paid sends one email: Idempotency-Key = receipt id, to, from, subject, link", async ({
    expect,
  }) => {
    const { message, userId, receiptId } = await withAddress();
    const mailer = resendMailer();

    const first = await consume([message, message], mailer);
    expect(first.explicitAcks.sort()).toEqual(first.ids.sort());
    const again = await consume([message], mailer, 2);
    expect(again.explicitAcks).toEqual(again.ids);

    expect(resend.requests).toHaveLength(1);
    const [request] = resend.requests;
    expect(request).toMatchObject({
      method: "POST",
      path: "/emails",
      idempotencyKey: receiptId,
      authorization: "Bearer re_test_key",
      body: {
        from: "Passes <receipts@passes.test>",
        to: testEmailOf(userId),
        subject: `Your tickets: order ${message.type === "order.paid" ? message.order_id : ""}`,
      },
    });
    expect(request?.body.text).toContain("€25.00");
    expect(request?.body.text).toContain(`${PUBLIC_BASE_URL}/#tickets`);
    expect(request?.body.html).toContain("2 × Harbour Pass");

    expect((await receiptRow(receiptId))?.mailedAt).toBeTruthy();
    expect(await emailRecord(receiptId)).toMatchObject({
      recipient: testEmailOf(userId),
      provider: "resend",
      providerMessageId: expect.stringMatching(/^email-/),
    });
  });

  it("the same event delivered twice in parallel sends one email", async ({ expect }) => {
    const { message, receiptId } = await withAddress();
    const [a, b] = await Promise.all([
      consume([message], resendMailer()),
      consume([message], resendMailer()),
    ]);
    expect([...a.explicitAcks, ...b.explicitAcks].sort()).toEqual([...a.ids, ...b.ids].sort());
    // Both may reach Resend, under the one key: one email.
    expect(new Set(resend.requests.map((r) => r.idempotencyKey))).toEqual(new Set([receiptId]));
    expect(resend.mailed.size).toBe(1);
  });

  it("a retry whose text changed since the lost answer (Resend 409 for the key) counts as sent, not as a failure", async ({
    expect,
  }) => {
    const { message, receiptId } = await withAddress();
    const dropTrigger = await crashAfterSend(receiptId);
    await consume([message], resendMailer());
    await dropTrigger();
    // The buyer's address changed meanwhile: what Resend sent under the key differs from the retry.
    const sent = resend.mailed.get(receiptId);
    if (!sent?.body) throw new Error("nothing was sent");
    sent.body.to = "earlier-address@example.test";
    const retried = await consume([message], resendMailer(), 2);
    expect(retried.explicitAcks).toEqual(retried.ids);
    expect(retried.retryMessages).toEqual([]);
    expect(resend.mailed.size).toBe(1);
    expect((await receiptRow(receiptId))?.mailedAt).toBeTruthy();
    expect((await emailRecord(receiptId))?.providerMessageId).toBeNull();
  });

  it("accepted by Resend but not recorded (a crash): the retry resends under the same key, mailing nothing new", async ({
    expect,
  }) => {
    const { message, receiptId } = await withAddress();
    const dropTrigger = await crashAfterSend(receiptId);
    const crashed = await consume([message], resendMailer());
    expect(crashed.retryMessages.map((m) => m.msgId)).toEqual(crashed.ids);
    expect((await receiptRow(receiptId))?.mailedAt).toBeNull();
    await dropTrigger();

    const retried = await consume([message], resendMailer(), 2);
    expect(retried.explicitAcks).toEqual(retried.ids);
    expect(resend.requests.map((r) => r.idempotencyKey)).toEqual([receiptId, receiptId]);
    // Resend answered the second request with the first message: the buyer got one email.
    expect(resend.mailed.size).toBe(1);
    expect((await receiptRow(receiptId))?.mailedAt).toBeTruthy();
    expect(await emailRecord(receiptId)).toBeDefined();
  });

  it("sent and recorded but the receipt not marked: the retry finds the record and sends nothing", async ({
    expect,
  }) => {
    const { message, receiptId } = await withAddress();
    const dropTrigger = await crashTrigger(
      triggerName(),
      `BEFORE UPDATE OF mailed_at ON receipts WHEN NEW.id = '${receiptId}' BEGIN SELECT RAISE(ABORT, 'crash before mark'); END`,
    );
    const crashed = await consume([message], resendMailer());
    expect(crashed.retryMessages).toHaveLength(1);
    await dropTrigger();

    const retried = await consume([message], resendMailer(), 2);
    expect(retried.explicitAcks).toEqual(retried.ids);
    expect(resend.requests).toHaveLength(1);
    expect((await receiptRow(receiptId))?.mailedAt).toBeTruthy();
  });

  it("a failing Resend (HTTP 500, then no connection) retries the message with the error kept; then it is sent", async ({
    expect,
  }) => {
    const { message, receiptId } = await withAddress();
    for (const [attempt, behaviour, error] of [
      [1, "http_500", "HTTP 500"],
      [2, "network_error", "Unable to fetch data"],
    ] as const) {
      resend.behave(behaviour);
      const failed = await consume([message], resendMailer(), attempt);
      expect(failed.explicitAcks).toEqual([]);
      expect(failed.retryMessages.map((m) => m.msgId)).toEqual(failed.ids);
      // What the dead letter will say if this was the last attempt.
      const [failure] = await db()
        .select()
        .from(eventFailures)
        .where(eq(eventFailures.messageId, failed.ids[0] ?? ""));
      expect(failure?.error).toContain(error);
      expect((await receiptRow(receiptId))?.mailedAt).toBeNull();
      expect(await emailRecord(receiptId)).toBeUndefined();
    }

    resend.behave("accept");
    const sent = await consume([message], resendMailer(), 3);
    expect(sent.explicitAcks).toEqual(sent.ids);
    expect(resend.requests.map((r) => r.idempotencyKey)).toEqual([receiptId, receiptId, receiptId]);
    expect(resend.mailed.size).toBe(1);
  });

  it("rate limited by Resend (429): the message is retried later, not at once, so a burst drains", async ({
    expect,
  }) => {
    const { message, receiptId } = await withAddress();
    // The test harness records that a message was retried but not its options: watch retry() itself.
    const retryDelays = async (behaviour: "rate_limited" | "http_500") => {
      resend.behave(behaviour);
      const batch = createMessageBatch(QUEUE, [
        { id: `mail-${++messageSeq}`, timestamp: new Date(), attempts: 1, body: message },
      ]);
      const delays: (number | undefined)[] = [];
      for (const queued of batch.messages) {
        const retry = queued.retry.bind(queued);
        queued.retry = (options?: QueueRetryOptions) => {
          delays.push(options?.delaySeconds);
          retry(options);
        };
      }
      await consumeEvents(batch, { db: db(), mailer: resendMailer(), publicBaseUrl: PUBLIC_BASE_URL });
      return delays;
    };

    const [delay] = await retryDelays("rate_limited");
    expect(delay).toBeGreaterThanOrEqual(RATE_LIMITED_RETRY_SECONDS);
    expect(delay).toBeLessThanOrEqual(2 * RATE_LIMITED_RETRY_SECONDS);
    expect((await receiptRow(receiptId))?.mailedAt).toBeNull();
    // Any other failure keeps the queue's own pace.
    expect(await retryDelays("http_500")).toEqual([undefined]);
  });

  it("a buyer without a known address: not mailed, not retried, logged; a redelivery does nothing", async ({
    expect,
  }) => {
    const { message, receiptId, userId } = await orderPaid({ email: null });
    const logs = vi.spyOn(console, "log");
    try {
      const handled = await consume([message], resendMailer());
      expect(handled.explicitAcks).toEqual(handled.ids);
      expect(handled.retryMessages).toEqual([]);
      const logged = logs.mock.calls
        .map(([line]) => String(line))
        .filter((line) => line.includes("no address known"));
      expect(logged.map((line) => JSON.parse(line))).toEqual([
        expect.objectContaining({ receipt_id: receiptId, user_id: userId }),
      ]);
    } finally {
      logs.mockRestore();
    }
    const stored = await receiptRow(receiptId);
    expect(stored?.mailedAt).toBeNull();
    expect(stored?.mailSkippedAt).toBeTruthy();

    const again = await consume([message], resendMailer(), 2);
    expect(again.explicitAcks).toEqual(again.ids);
    expect(resend.requests).toEqual([]);
  });
});

describe("wallet receipts through Resend, grouped", () => {
  /** A top-up's event for a real PURCHASE row, appended directly (no real queue delivery races it). */

  it("a refused send retries only its own message; one without an address is skipped; each is mailed once", async ({
    expect,
  }) => {
    const [mailed, refused, unknown] = [uniqueUser(), uniqueUser(), uniqueUser()];
    await rememberEmail(mailed);
    await rememberEmail(refused);
    const messages = [
      await toppedUpEvent(mailed, 1_000, "top_mail"),
      await toppedUpEvent(refused, 1_000, "top_mail"),
      await toppedUpEvent(unknown, 1_000, "top_mail"),
    ];
    const ids = messages.map((m) => receiptIdForTransaction(m.transaction_id));
    resend.behave((request) => (request.body.to === testEmailOf(refused) ? "http_500" : "accept"));

    const first = await consume(messages, resendMailer());
    expect(first.explicitAcks.sort()).toEqual([first.ids[0], first.ids[2]].sort());
    expect(first.retryMessages.map((m) => m.msgId)).toEqual([first.ids[1]]);

    resend.behave("accept");
    const retried = await consume([messages[1]], resendMailer(), 2);
    expect(retried.explicitAcks).toEqual(retried.ids);
    // And the whole batch once more, as a redelivery: nothing is sent again.
    await consume(messages, resendMailer(), 2);

    const stored = await db().select().from(walletReceipts).where(inArray(walletReceipts.id, ids));
    const byId = new Map(stored.map((receipt) => [receipt.id, receipt]));
    expect(byId.get(ids[0] ?? "")?.mailedAt).toBeTruthy();
    expect(byId.get(ids[1] ?? "")?.mailedAt).toBeTruthy();
    expect(byId.get(ids[2] ?? "")).toMatchObject({ mailedAt: null, mailSkippedAt: expect.any(String) });
    expect([...resend.mailed.keys()].sort()).toEqual([ids[0], ids[1]].sort());
    expect(resend.requests.filter((r) => r.idempotencyKey === ids[0])).toHaveLength(1);
    // Refused in the group, again one by one in the same batch (which asks for the retry), then sent.
    expect(resend.requests.filter((r) => r.idempotencyKey === ids[1])).toHaveLength(3);
    expect(resend.requests[0]?.body.subject).toBe("Wallet top-up of €10.00");
  });
});
