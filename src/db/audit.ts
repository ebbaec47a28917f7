import { and, asc, desc, eq, gt, gte, lt, sql } from "drizzle-orm";
import { sha256Hex } from "../auth/sha256";
import { newId } from "../ids";
import type { AuditEntry } from "../types/domain";
import { atomically, type Db, type Statement, selectJsonRows } from "./client";
import { decodeCursor, encodeCursor } from "./cursor";
import { auditLog } from "./schema";

type AuditRow = typeof auditLog.$inferSelect;

/**
 * Every attempt to append lost the race for the chain's tail: the change was not made. A request answers
 * 503 with `retry-after` (see toApiError); the queue consumer retries the message.
 */
export class AuditLogBusy extends Error {
  constructor() {
    super("The audit log is busy; retry shortly");
    this.name = "AuditLogBusy";
  }
}

/** The prev_hash of the first entry. The append trigger in migrations/0003 carries the same value. */
export const AUDIT_GENESIS_HASH = "0".repeat(64);
/**
 * Concurrent appends race for the tail; each round has one winner, so a burst of N writers needs up to
 * N attempts for the last one. Beyond this the log is too contended and the caller gets a 503.
 */
export const AUDIT_APPEND_MAX_ATTEMPTS = 32;
/** Random back-off between attempts grows by this per attempt (capped), so losers spread out. */
const AUDIT_RETRY_JITTER_STEP_MS = 3;
const AUDIT_RETRY_JITTER_MAX_MS = 50;
/** Details are produced by our own code from validated input; anything larger is a bug, not data. */
export const MAX_AUDIT_DETAILS_CHARS = 8_192;
/** Rows read per query while verifying, so verification never holds the whole log in memory. */
export const AUDIT_VERIFY_PAGE_SIZE = 500;

export interface AuditRecord {
  /**
   * A deterministic id for entries written from at-least-once deliveries (e.g. `aud_<redemption id>`):
   * a redelivery then finds the entry already there and appends nothing.
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
 * statements commit in the same batch as the entry, so an effect and its audit record exist together or
 * not at all. A writer that loses the race for the tail re-reads it and tries again (the whole batch
 * rolled back, so retrying `alongside` is safe).
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
 * Appends several entries, chained to each other in order, with one tail read and one batch: what a queue
 * consumer uses to record a whole batch of scans without racing itself for the tail once per scan. A
 * deterministic `id` already in the log (a redelivery) fails the whole batch; for a single record that
 * is answered with the stored entry, and callers with several retry them one by one.
 */
export async function appendAuditEntries(
  db: Db,
  records: { record: AuditRecord; now: Date }[],
  alongside: Statement[] = [],
): Promise<AuditEntry[]> {
  const prepared = records.map(({ record, now }) => {
    const details = canonicalJson(record.details ?? {});
    if (details.length > MAX_AUDIT_DETAILS_CHARS) {
      throw new Error(`audit details for ${record.action} exceed ${MAX_AUDIT_DETAILS_CHARS} characters`);
    }
    return { record, details, nowIso: now.toISOString(), id: record.id ?? newId("aud") };
  });
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
