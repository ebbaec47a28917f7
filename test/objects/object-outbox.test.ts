import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { inArray } from "drizzle-orm";
import { describe, it } from "vitest";
import { auditLog } from "../../src/db/schema";
import { ObjectOutbox, OUTBOX_SEND_BATCH } from "../../src/objects/object-outbox";
import { eventually } from "../support/eventually";
import { db } from "../support/fixtures";

// The outbox forwards what an object committed, however large: a window of big events must still drain.

const bigEvent = (i: number, bytes: number) => ({
  type: "audit.requested" as const,
  audit: {
    id: `aud_outbox_${crypto.randomUUID()}`,
    actor: "system:test",
    action: "test.outbox",
    target: `item-${i}`,
    details: { filler: "x".repeat(bytes) },
    ts: new Date().toISOString(),
  },
});

describe("ObjectOutbox.send", () => {
  it("a full window of events larger than one queue batch allows is sent in several batches, all of it", async ({
    expect,
  }) => {
    const stub = env.WALLETS.get(env.WALLETS.idFromName(`outbox-${crypto.randomUUID()}`));
    // 100 events of ~3.4 KB: about 340 KB, over the queue's 256 KB per batch (Miniflare refuses > 288 KB).
    const events = Array.from({ length: OUTBOX_SEND_BATCH }, (_, i) => bigEvent(i, 3_400));
    const { sent, left } = await runInDurableObject(stub, async (_instance, state) => {
      const outbox = new ObjectOutbox(state.storage.sql, env.EVENTS);
      for (const event of events) outbox.add(event);
      const sent = await outbox.send();
      return { sent, left: outbox.isEmpty() ? 0 : 1 };
    });
    expect(sent).toBe(true);
    expect(left).toBe(0);
    // And the queue delivered every one: the consumer chained them all.
    const ids = events.map((event) => event.audit.id);
    const chained = await eventually(
      () => db().select({ id: auditLog.id }).from(auditLog).where(inArray(auditLog.id, ids)),
      (rows) => rows.length === ids.length,
    );
    expect(chained).toHaveLength(ids.length);
  });
});
