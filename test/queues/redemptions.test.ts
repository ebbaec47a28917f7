import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, it, vi } from "vitest";
import { verifyAuditChain } from "../../src/db/audit";
import { auditLog, redemptions, ticketEntitlements } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import { createMailer } from "../../src/mail/create-mailer";
import { consumeEvents } from "../../src/queues/consumer";
import type { RedemptionRecorded } from "../../src/queues/messages";
import { db } from "../support/fixtures";
import { paidTicket } from "../support/tickets";

/** Delivers `bodies` as one queue batch and answers how many D1 batches recording them took. */
async function d1BatchesFor(bodies: unknown[]): Promise<number> {
  const database = db();
  const batches = vi.spyOn(database, "batch");
  try {
    await deliver(bodies, database);
    return batches.mock.calls.length;
  } finally {
    batches.mockRestore();
  }
}

let seq = 0;
const deliver = (bodies: unknown[], database = db()) =>
  consumeEvents(
    createMessageBatch(
      "passes-events",
      bodies.map((body) => ({ id: `r-${++seq}`, timestamp: new Date(), attempts: 1, body })),
    ),
    { db: database, mailer: createMailer(loadConfig(env), database) },
  );

function event(
  code: string,
  remaining: number,
  overrides: Partial<RedemptionRecorded> = {},
): RedemptionRecorded {
  return {
    type: "redemption.recorded",
    redemption_id: `red_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`,
    ticket_code: code,
    function: "bus",
    remaining_uses: remaining,
    operator_id: "opr_q",
    session_id: "ses_q",
    device_id: "dev-q",
    location_id: "loc-q",
    ts: new Date().toISOString(),
    ...overrides,
  };
}

describe("queue consumer: redemption.recorded", () => {
  it("a redelivered event writes one redemption and one audit entry", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 10 }]);
    const once = event(ticket.code, 9);
    await deliver([once, once]);
    await deliver([once]);
    const rows = await db().select().from(redemptions).where(eq(redemptions.id, once.redemption_id));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      operatorId: "opr_q",
      sessionId: "ses_q",
      deviceId: "dev-q",
      locationId: "loc-q",
    });
    const audits = await db()
      .select()
      .from(auditLog)
      .where(eq(auditLog.id, `aud_${once.redemption_id}`));
    expect(audits).toHaveLength(1);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });

  it("a batch of scans is recorded together; a batch that repeats one falls back and still records each once", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 10 }]);
    const first = [event(ticket.code, 9), event(ticket.code, 8), event(ticket.code, 7)];
    // Recorded together: one D1 batch for the three scans, not one each.
    expect(await d1BatchesFor(first)).toBe(1);
    const second = [first[1] as RedemptionRecorded, event(ticket.code, 6), event(ticket.code, 5)];
    await deliver(second);
    const ids = [...first, ...second].map((e) => e.redemption_id);
    for (const id of new Set(ids)) {
      expect(await db().select().from(redemptions).where(eq(redemptions.id, id))).toHaveLength(1);
      expect(
        await db()
          .select()
          .from(auditLog)
          .where(eq(auditLog.id, `aud_${id}`)),
      ).toHaveLength(1);
    }
    const [row] = await db()
      .select()
      .from(ticketEntitlements)
      .where(eq(ticketEntitlements.ticketCode, ticket.code));
    expect(row?.remainingUses).toBe(5);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });

  it("events applied out of order leave the read model at the lowest count", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 10 }]);
    await deliver([event(ticket.code, 7), event(ticket.code, 9), event(ticket.code, 8)]);
    const [row] = await db()
      .select()
      .from(ticketEntitlements)
      .where(eq(ticketEntitlements.ticketCode, ticket.code));
    expect(row?.remainingUses).toBe(7);
  });

  it("one batch over several tickets and functions lowers each pair alone and chains the entries in order", async ({
    expect,
  }) => {
    const a = await paidTicket([
      { function: "bus", uses: 10 },
      { function: "ferry", uses: 2 },
    ]);
    const b = await paidTicket([{ function: "bus", uses: 10 }]);
    const batch = [
      event(a.code, 9),
      event(b.code, 9),
      event(a.code, 1, { function: "ferry" }),
      event(a.code, 8),
      event(b.code, 8),
    ];
    expect(await d1BatchesFor(batch)).toBe(1);
    const remaining = await db().select().from(ticketEntitlements);
    const left = (code: string, fn: string) =>
      remaining.find((row) => row.ticketCode === code && row.function === fn)?.remainingUses;
    expect([left(a.code, "bus"), left(a.code, "ferry"), left(b.code, "bus")]).toEqual([8, 1, 8]);
    const entries = await db().select({ id: auditLog.id, seq: auditLog.seq }).from(auditLog);
    const chained = batch.map(
      (e) => entries.find((entry) => entry.id === `aud_${e.redemption_id}`)?.seq ?? 0,
    );
    expect(chained.every((seqNo, i) => i === 0 || seqNo === (chained[i - 1] ?? 0) + 1)).toBe(true);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });
});
