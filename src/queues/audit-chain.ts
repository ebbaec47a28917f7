import { desc, eq } from "drizzle-orm";
import {
  AUDIT_GENESIS_HASH,
  type AuditRecord,
  auditEntryHash,
  chainedDetails,
  errorMatches,
  toAuditEntry,
} from "../db/audit";
import { atomically, type Db, type Statement, selectJsonRows } from "../db/client";
import { auditLog } from "../db/schema";
import { newId } from "../ids";
import type { AuditEntry } from "../types/domain";

// The audit chain's only writer. Request paths never append: they commit an `audit.requested` request
// with their effect (commitAudited in src/db/audit.ts), and the queue consumer appends it here. A test
// (test/queues/audit-requests.test.ts) keeps every module but the consumer from importing this one.

type AuditRow = typeof auditLog.$inferSelect;

/** Every attempt to append lost the race for the chain's tail: nothing was written; the message is retried. */
export class AuditLogBusy extends Error {
  constructor() {
    super("The audit log is busy; retry shortly");
    this.name = "AuditLogBusy";
  }
}

/**
 * Concurrent appends (consumer invocations running side by side) race for the tail; each round has one
 * winner, so a burst of N writers needs up to N attempts for the last one. Beyond this the message is
 * retried by the queue instead.
 */
export const AUDIT_APPEND_MAX_ATTEMPTS = 32;
/** Random back-off between attempts grows by this per attempt (capped), so losers spread out. */
const AUDIT_RETRY_JITTER_STEP_MS = 3;
const AUDIT_RETRY_JITTER_MAX_MS = 50;

/** Another writer took the tail first: the append trigger or a UNIQUE on seq / prev_hash refused ours. */
const isChainConflict = (error: unknown) =>
  errorMatches(error, /audit_log_chain_conflict|UNIQUE constraint failed: audit_log\.(seq|prev_hash)/);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The chained rows in one statement whatever their number (one JSON parameter: D1 allows 100 bound
 * parameters per statement, nine per row would stop at eleven). Rows go in array order, and the append
 * trigger checks each against the row inserted just before it.
 */
function insertAuditRowsStatement(db: Db, rows: AuditRow[]): Statement {
  const [only] = rows;
  if (rows.length === 1 && only) return db.insert(auditLog).values(only);
  return db
    .insert(auditLog)
    .select(
      selectJsonRows(rows, [
        "seq",
        "id",
        "ts",
        "actor",
        "action",
        "target",
        "details",
        "prevHash",
        "hash",
      ] satisfies (keyof AuditRow)[]),
    );
}

/**
 * Appends one entry to the hash chain: one read of the tail, one insert. When `alongside` is given, those
 * statements commit in the same batch as the entry. A writer that loses the race for the tail re-reads it
 * and tries again (the whole batch rolled back, so retrying `alongside` is safe). An `id` already in the
 * log (a redelivery) appends nothing and answers the stored entry.
 *
 * `ts` is `now`, or the tail's ts if that is later, so timestamps never go backwards along the chain.
 */
export async function appendAudit(
  db: Db,
  record: AuditRecord,
  now: Date,
  alongside: Statement[] = [],
): Promise<AuditEntry> {
  const [entry] = await appendAuditEntries(db, [{ record, now }], alongside);
  if (!entry) throw new Error("invariant: one record appends one entry");
  return entry;
}

/**
 * Appends several entries, chained to each other in order, with one tail read and one batch: what the
 * consumer uses to record a whole queue batch without racing itself for the tail once per message. A
 * deterministic `id` already in the log (a redelivery) fails the whole batch; for a single record that
 * is answered with the stored entry, and callers with several retry them one by one.
 */
export async function appendAuditEntries(
  db: Db,
  records: { record: AuditRecord; now: Date }[],
  alongside: Statement[] = [],
): Promise<AuditEntry[]> {
  const prepared = records.map(({ record, now }) => ({
    record,
    details: chainedDetails(record),
    nowIso: now.toISOString(),
    id: record.id ?? newId("aud"),
  }));
  for (let attempt = 1; ; attempt++) {
    const [tail] = await db
      .select({ seq: auditLog.seq, ts: auditLog.ts, hash: auditLog.hash })
      .from(auditLog)
      .orderBy(desc(auditLog.seq))
      .limit(1);
    const rows: AuditRow[] = [];
    let previous = { seq: tail?.seq ?? 0, ts: tail?.ts ?? "", hash: tail?.hash ?? AUDIT_GENESIS_HASH };
    for (const { record, details, nowIso, id } of prepared) {
      const unhashed = {
        seq: previous.seq + 1,
        id,
        // Never step back in time along the chain, even when this isolate's clock trails the last writer's.
        ts: previous.ts && Date.parse(previous.ts) > Date.parse(nowIso) ? previous.ts : nowIso,
        actor: record.actor,
        action: record.action,
        target: record.target ?? null,
        details,
        prevHash: previous.hash,
      };
      const row: AuditRow = { ...unhashed, hash: await auditEntryHash(unhashed) };
      rows.push(row);
      previous = row;
    }
    try {
      await atomically(db, [...alongside, insertAuditRowsStatement(db, rows)]);
      return rows.map(toAuditEntry);
    } catch (error) {
      const single = prepared.length === 1 ? prepared[0] : undefined;
      if (single?.record.id !== undefined && errorMatches(error, /UNIQUE constraint failed: audit_log\.id/)) {
        const [existing] = await db.select().from(auditLog).where(eq(auditLog.id, single.id)).limit(1);
        if (existing) return [toAuditEntry(existing)];
      }
      if (!isChainConflict(error)) throw error;
      if (attempt >= AUDIT_APPEND_MAX_ATTEMPTS) {
        throw new AuditLogBusy();
      }
      await sleep(Math.random() * Math.min(attempt * AUDIT_RETRY_JITTER_STEP_MS, AUDIT_RETRY_JITTER_MAX_MS));
    }
  }
}
