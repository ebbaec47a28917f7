import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { inArray } from "drizzle-orm";
import { describe, it, vi } from "vitest";
import { verifyAuditChain } from "../../src/db/audit";
import { auditLog } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import { createMailer } from "../../src/mail/create-mailer";
import { consumeEvents } from "../../src/queues/consumer";
import type { AuditRequested, ScanRejected } from "../../src/queues/messages";
import { db } from "../support/fixtures";

// Messages that are an audit entry and nothing else (refused scans, requested entries such as a till's
// lookup) are chained in one append per queue batch, so a flood of them does not race itself for the
// chain's tail once each; a batch that repeats one falls back to one by one and still writes each once.

let seq = 0;
const deliver = (bodies: unknown[], database = db()) =>
  consumeEvents(
    createMessageBatch(
      "passes-events",
      bodies.map((body) => ({ id: `a-${++seq}`, timestamp: new Date(), attempts: 1, body })),
    ),
    { db: database, mailer: createMailer(loadConfig(env), database) },
  );

const rejected = (): ScanRejected => ({
  type: "scan.rejected",
  scan_id: `scn_${crypto.randomUUID()}`,
  code: "token_replayed",
  ticket_code: "TCKT",
  function: "bus",
  operator_id: "opr_a",
  session_id: "ses_a",
  ts: new Date().toISOString(),
});

const requested = (): AuditRequested => ({
  type: "audit.requested",
  audit: {
    id: `aud_lookup_${crypto.randomUUID()}`,
    actor: "opr_b",
    action: "pos.lookup",
    target: "wal_x",
    details: { result: "ok" },
    ts: new Date().toISOString(),
  },
});

const idOf = (event: ScanRejected | AuditRequested) =>
  event.type === "scan.rejected" ? `aud_${event.scan_id}` : event.audit.id;

describe("queue consumer: audit-only messages", () => {
  it("a batch of refusals and requested entries is one append, chained in delivery order", async ({
    expect,
  }) => {
    const batch = [rejected(), requested(), rejected(), rejected(), requested()];
    const database = db();
    const d1Batches = vi.spyOn(database, "batch");
    try {
      await deliver(batch, database);
      // One tail read and one batch for all five, not five races for the tail.
      expect(d1Batches.mock.calls).toHaveLength(1);
    } finally {
      d1Batches.mockRestore();
    }
    const ids = batch.map(idOf);
    const rows = await db()
      .select({ id: auditLog.id, seq: auditLog.seq, action: auditLog.action })
      .from(auditLog)
      .where(inArray(auditLog.id, ids));
    const seqs = ids.map((id) => rows.find((row) => row.id === id)?.seq ?? 0);
    expect(seqs.every((n, i) => n > 0 && (i === 0 || n === (seqs[i - 1] ?? 0) + 1))).toBe(true);
    expect(rows.map((row) => row.action).sort()).toEqual([
      "pos.lookup",
      "pos.lookup",
      "ticket.scan",
      "ticket.scan",
      "ticket.scan",
    ]);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });

  it("a batch that repeats an entry already written falls back to one by one: each is written once", async ({
    expect,
  }) => {
    const first = [rejected(), requested()];
    await deliver(first);
    const again = [first[0] as ScanRejected, rejected(), first[1] as AuditRequested, requested()];
    await deliver(again);
    const ids = [...new Set([...first, ...again].map(idOf))];
    const rows = await db().select({ id: auditLog.id }).from(auditLog).where(inArray(auditLog.id, ids));
    expect(rows.map((row) => row.id).sort()).toEqual([...ids].sort());
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });
});
