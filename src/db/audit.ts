import { and, asc, eq, gt, gte, lt, sql } from "drizzle-orm";
import { sha256Hex } from "../auth/sha256";
import { newId } from "../ids";
import type { EventMessage } from "../queues/messages";
import type { AuditEntry } from "../types/domain";
import { atomically, type Db, type Statement } from "./client";
import { decodeCursor, encodeCursor } from "./cursor";
import { type OutboxEntry, outboxStatement, publishOutboxEntry } from "./outbox";
import { auditLog } from "./schema";

// The audit log: one hash chain in D1. Every audited effect commits a request for its entry with itself
// (commitAudited: the effect and an `audit.requested` outbox row in one batch), and only the queue
// consumer appends to the chain (src/queues/audit-chain.ts), so entries appear within seconds of their
// effect, exactly once, and no request ever waits on the chain's tail.

type AuditRow = typeof auditLog.$inferSelect;

/** The prev_hash of the first entry. The append trigger in migrations/0003 carries the same value. */
export const AUDIT_GENESIS_HASH = "0".repeat(64);
/** Details are produced by our own code from validated input; anything larger is a bug, not data. */
export const MAX_AUDIT_DETAILS_CHARS = 8_192;
/** Rows read per query while verifying, so verification never holds the whole log in memory. */
export const AUDIT_VERIFY_PAGE_SIZE = 500;

export interface AuditRecord {
  /**
   * A deterministic id for an entry that more than one delivery or request may ask for (e.g.
   * `aud_<redemption id>`): the consumer then finds it already there and appends nothing. Without one, a
   * fresh id is fixed when the entry is requested.
   */
  id?: string;
  actor: string;
  action: string;
  target?: string | null;
  /** Never put passwords, tokens or other secrets here: the log is kept forever. */
  details?: Record<string, unknown>;
}

/** JSON with object keys sorted at every depth, so equal details always serialize to equal bytes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (item === null || typeof item !== "object" || Array.isArray(item)) return item;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(item).sort()) sorted[key] = (item as Record<string, unknown>)[key];
    return sorted;
  });
}

/**
 * The chain hash of one entry: SHA-256 (hex) over a JSON array of its fields in a fixed order, with
 * `details` as the exact stored text. A JSON array leaves no ambiguity about where one field ends.
 */
export function auditEntryHash(row: Omit<AuditRow, "hash">): Promise<string> {
  return sha256Hex(
    JSON.stringify([row.seq, row.id, row.ts, row.actor, row.action, row.target, row.details, row.prevHash]),
  );
}

function parseDetails(text: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // Only a row edited behind the API's back can hold this; show it rather than fail the listing.
  }
  return { unparseable: text };
}

export function toAuditEntry(row: AuditRow): AuditEntry {
  return {
    seq: row.seq,
    id: row.id,
    ts: row.ts,
    actor: row.actor,
    action: row.action,
    target: row.target,
    details: parseDetails(row.details),
    prev_hash: row.prevHash,
    hash: row.hash,
  };
}

/** True when any error in the cause chain carries a message matching `pattern`. */
export function errorMatches(error: unknown, pattern: RegExp): boolean {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 4; depth++) {
    if (pattern.test(current.message)) return true;
    current = current.cause;
  }
  return false;
}

/**
 * A record's details as the chain stores them (canonical JSON), or a thrown error past
 * MAX_AUDIT_DETAILS_CHARS: checked when the entry is requested and again when it is appended.
 */
export function chainedDetails(record: AuditRecord): string {
  const details = canonicalJson(record.details ?? {});
  if (details.length > MAX_AUDIT_DETAILS_CHARS) {
    throw new Error(`audit details for ${record.action} exceed ${MAX_AUDIT_DETAILS_CHARS} characters`);
  }
  return details;
}

/** One outbox row per requested entry: asking for the same entry again (a racing replay) adds nothing. */
const auditOutboxId = (auditId: string) => `audit.requested:${auditId}`;

/**
 * The outbox entry asking the queue consumer to chain `record`, dated `now`. The entry's id is fixed here,
 * in the stored message, so every delivery of it (the publish, the cron's drain, a queue retry) names the
 * same entry and the consumer appends it once. Details are checked against the limit now, before the
 * effect commits, rather than failing in the consumer after it has.
 */
function auditOutboxEntry(record: AuditRecord, now: Date): OutboxEntry {
  const details = chainedDetails(record);
  const id = record.id ?? newId("aud");
  return {
    id: auditOutboxId(id),
    message: {
      type: "audit.requested",
      audit: {
        id,
        actor: record.actor,
        action: record.action,
        target: record.target ?? null,
        // As the chain will store them: what is sent now and what the drain may send later are equal.
        details: JSON.parse(details) as Record<string, unknown>,
        ts: now.toISOString(),
      },
    },
  };
}

/**
 * Commits `effect` and the request for its audit entry in one D1 batch (both or neither), then sends the
 * request to the queue, whose consumer appends it to the hash chain within seconds. Request paths never
 * append to the chain themselves, so none of them races another for its tail or waits on it.
 *
 * Throws what the batch throws: then nothing was committed and no entry will appear. A failed send is
 * not an error (the cron's drain sends the row later).
 */
export async function commitAudited(
  db: Db,
  events: Queue<EventMessage>,
  record: AuditRecord,
  now: Date,
  effect: Statement[] = [],
): Promise<void> {
  const entry = auditOutboxEntry(record, now);
  await atomically(db, [...effect, outboxStatement(db, entry, now, { repeatable: true })]);
  await publishOutboxEntry(db, events, entry, now);
}

export type AuditVerification =
  | { ok: true; entries: number }
  | {
      ok: false;
      entries_checked: number;
      broken_at: { seq: number; id: string; reason: AuditBreak };
    };

/**
 * - `seq_gap`: an entry is missing before this one.
 * - `prev_hash_mismatch`: this entry does not link to the one before it.
 * - `hash_mismatch`: this entry's content no longer matches its hash (it was edited).
 * - `ts_regressed`: this entry is dated before the one it follows.
 */
export type AuditBreak = "seq_gap" | "prev_hash_mismatch" | "hash_mismatch" | "ts_regressed";

/**
 * Walks the whole chain from the genesis, a page at a time, and reports the first broken link.
 * `entries_checked` counts the entries before it that verified. Removing entries from the end cannot be
 * seen from the chain alone; compare `entries` and the last hash with a copy kept elsewhere for that.
 */
export async function verifyAuditChain(
  db: Db,
  pageSize = AUDIT_VERIFY_PAGE_SIZE,
): Promise<AuditVerification> {
  let previous = { seq: 0, hash: AUDIT_GENESIS_HASH, ts: "" };
  let checked = 0;
  for (;;) {
    const page = await db
      .select()
      .from(auditLog)
      .where(gt(auditLog.seq, previous.seq))
      .orderBy(asc(auditLog.seq))
      .limit(pageSize);
    for (const row of page) {
      let reason: AuditBreak | undefined;
      if (row.seq !== previous.seq + 1) reason = "seq_gap";
      else if (row.prevHash !== previous.hash) reason = "prev_hash_mismatch";
      else if ((await auditEntryHash(row)) !== row.hash) reason = "hash_mismatch";
      else if (row.ts < previous.ts) reason = "ts_regressed";
      if (reason)
        return { ok: false, entries_checked: checked, broken_at: { seq: row.seq, id: row.id, reason } };
      checked++;
      previous = { seq: row.seq, hash: row.hash, ts: row.ts };
    }
    if (page.length < pageSize) return { ok: true, entries: checked };
  }
}

/** Where the next page starts: the last entry returned. Entries are ordered by (ts, seq), which is seq order. */
export interface AuditCursor {
  ts: string;
  seq: number;
}

export function encodeAuditCursor(cursor: AuditCursor): string {
  return encodeCursor([cursor.seq, cursor.ts]);
}

/** An opaque cursor from a previous page, or undefined when it is not one. */
export function decodeAuditCursor(text: string): AuditCursor | undefined {
  const position = decodeCursor(text);
  if (
    position?.length === 2 &&
    Number.isSafeInteger(position[0]) &&
    (position[0] as number) >= 1 &&
    typeof position[1] === "string"
  ) {
    return { seq: position[0] as number, ts: position[1] };
  }
  return undefined;
}

export interface AuditPageQuery {
  /** Inclusive, ISO 8601 UTC as stored. */
  from: string;
  /** Exclusive. */
  to: string;
  /** Exact matches; each has an index led by it (migrations/0009), followed by (ts, seq). */
  action?: string;
  actor?: string;
  after?: AuditCursor;
  limit: number;
}

/**
 * One page of entries with `from <= ts < to`, in chain order. Timestamps never decrease along the chain
 * (the append trigger refuses it), so ordering by (ts, seq) is seq order and the ts index serves both the
 * range and the order; the keyset cursor makes every page one index range scan. With `action` or `actor`,
 * the (action|actor, ts, seq) index does the same within that value, so the cursor works unchanged.
 */
export async function listAuditEntries(
  db: Db,
  query: AuditPageQuery,
): Promise<{ entries: AuditEntry[]; next: AuditCursor | null }> {
  const rows = await auditPageStatement(db, query);
  const page = rows.slice(0, query.limit);
  const last = page.at(-1);
  return {
    entries: page.map(toAuditEntry),
    next: rows.length > query.limit && last ? { ts: last.ts, seq: last.seq } : null,
  };
}

/** The page's one query (`limit + 1` rows, to tell whether another page follows); tests read its plan. */
export function auditPageStatement(db: Db, query: AuditPageQuery) {
  const start = query.after
    ? sql`(${auditLog.ts}, ${auditLog.seq}) > (${query.after.ts}, ${query.after.seq})`
    : undefined;
  return db
    .select()
    .from(auditLog)
    .where(
      and(
        query.action === undefined ? undefined : eq(auditLog.action, query.action),
        query.actor === undefined ? undefined : eq(auditLog.actor, query.actor),
        gte(auditLog.ts, query.from),
        lt(auditLog.ts, query.to),
        start,
      ),
    )
    .orderBy(asc(auditLog.ts), asc(auditLog.seq))
    .limit(query.limit + 1);
}
