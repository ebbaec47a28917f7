import { and, gte, inArray, lt } from "drizzle-orm";
import { describe, it } from "vitest";
import {
  drainOutboxBacklog,
  OUTBOX_DRAIN_BATCH,
  OUTBOX_GRACE_SECONDS,
  OUTBOX_RETENTION_DAYS,
  pruneSentOutbox,
} from "../../src/db/outbox";
import { outbox } from "../../src/db/schema";
import type { EventMessage } from "../../src/queues/messages";
import { db } from "../support/fixtures";

// The D1 outbox now carries every audited action's entry as well as order and receipt events: a backlog
// left by a queue outage must clear in minutes, and sent rows must not pile up forever.

const DAY_MS = 86_400_000;

function auditRow(id: string, createdAt: Date, sentAt: Date | null) {
  return {
    id,
    payload: JSON.stringify({
      type: "audit.requested",
      audit: {
        id: `aud_${id}`,
        actor: "opr_test",
        action: "test",
        target: null,
        details: {},
        ts: createdAt.toISOString(),
      },
    }),
    createdAt: createdAt.toISOString(),
    sentAt: sentAt?.toISOString() ?? null,
  };
}

describe("the D1 outbox's upkeep", () => {
  it("a backlog larger than one drain goes out in one run, each row once", async ({ expect }) => {
    const now = new Date(Date.now() + 10 * DAY_MS);
    const created = new Date(now.getTime() - (OUTBOX_GRACE_SECONDS + 5) * 1000);
    const prefix = `test.backlog:${crypto.randomUUID()}:`;
    const ids = Array.from({ length: OUTBOX_DRAIN_BATCH * 2 + 7 }, (_, i) => `${prefix}${i}`);
    for (let i = 0; i < ids.length; i += 20) {
      await db()
        .insert(outbox)
        .values(ids.slice(i, i + 20).map((id) => auditRow(id, created, null)));
    }
    const sent: string[] = [];
    const queue = {
      sendBatch: async (batch: Iterable<{ body: EventMessage }>) => {
        for (const { body } of batch) if (body.type === "audit.requested") sent.push(body.audit.id);
      },
    } as unknown as Queue<EventMessage>;
    await drainOutboxBacklog(db(), queue, now);
    const mine = sent.filter((id) => ids.includes(id.replace(/^aud_/, "")));
    expect(mine).toHaveLength(ids.length);
    expect(new Set(mine).size).toBe(ids.length);
    // D1 binds at most 100 parameters (and refuses long LIKE patterns): the run's rows are a key range.
    const stored = await db()
      .select()
      .from(outbox)
      .where(and(gte(outbox.id, prefix), lt(outbox.id, `${prefix}~`)));
    expect(stored).toHaveLength(ids.length);
    expect(stored.every((row) => row.sentAt !== null)).toBe(true);
  });

  it("prunes rows sent before the retention, and never an unsent or a recent one", async ({ expect }) => {
    const now = new Date();
    const old = new Date(now.getTime() - (OUTBOX_RETENTION_DAYS + 1) * DAY_MS);
    const recent = new Date(now.getTime() - (OUTBOX_RETENTION_DAYS - 1) * DAY_MS);
    const rows = {
      sentLongAgo: auditRow(`test.prune:${crypto.randomUUID()}`, old, old),
      sentRecently: auditRow(`test.prune:${crypto.randomUUID()}`, recent, recent),
      neverSent: auditRow(`test.prune:${crypto.randomUUID()}`, old, null),
    };
    await db().insert(outbox).values(Object.values(rows));
    expect(await pruneSentOutbox(db(), now)).toBeGreaterThanOrEqual(1);
    const left = await db()
      .select({ id: outbox.id })
      .from(outbox)
      .where(
        inArray(
          outbox.id,
          Object.values(rows).map((row) => row.id),
        ),
      );
    expect(left.map((row) => row.id).sort()).toEqual([rows.sentRecently.id, rows.neverSent.id].sort());
  });
});
