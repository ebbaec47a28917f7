import { and, eq, lt, sql } from "drizzle-orm";
import { sha256Hex } from "../auth/sha256";
import { type Db, isConstraintError, type Statement } from "../db/client";
import { idempotencyRecords } from "../db/schema";
import { ApiError, PROBLEM_CONTENT_TYPE, problemBody } from "../errors";

export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/** A request holding a key longer than this is presumed crashed; a retry may then take the key over. */
export const IDEMPOTENCY_LOCK_SECONDS = 30;
/** Stored outcomes are kept at least 24 h (the contract); the sweep removes them after this. */
export const IDEMPOTENCY_RETENTION_SECONDS = 48 * 60 * 60;
export const REPLAYED_HEADER = "idempotent-replayed";

/** Accepts both `"abc"` and `abc` (RFC 8941 string or bare token). */
export function parseIdempotencyKey(header: string | undefined): string {
  if (header === undefined) throw new ApiError("idempotency_key_missing");
  const trimmed = header.trim();
  const key =
    trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed;
  if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new ApiError(
      "idempotency_key_invalid",
      `Idempotency-Key must be 1–${MAX_IDEMPOTENCY_KEY_LENGTH} characters`,
    );
  }
  return key;
}

export interface IdempotentOutcome {
  status: number;
  body: unknown;
}

/**
 * Handed to the operation while it holds the key. An operation whose effect is a D1 batch puts
 * `complete(outcome)` FIRST in that batch, so the effect and its stored response commit together: there is
 * no instant at which the effect exists but a retry would not see it.
 */
export class IdempotencyClaim {
  completedInBatch = false;
  constructor(
    readonly scope: string,
    readonly key: string,
    private readonly db: Db,
    /** Set for a claim that inserts its record with the effect instead of finishing a locked one. */
    private readonly optimistic?: { requestHash: string; now: Date },
  ) {}

  complete(outcome: IdempotentOutcome): Statement {
    this.completedInBatch = true;
    return this.completion(outcome);
  }

  /** Stores the outcome on its own, for operations that had no batch to carry it. */
  async store(outcome: IdempotentOutcome): Promise<void> {
    await this.completion(outcome).run();
  }

  /** Optimistic claims only: stores the outcome unless another request stored one first. */
  async storeIfAbsent(outcome: IdempotentOutcome): Promise<boolean> {
    const completion = this.completion(outcome);
    if (!("onConflictDoNothing" in completion)) throw new Error("storeIfAbsent needs an optimistic claim");
    return (await completion.onConflictDoNothing().run()).meta.changes === 1;
  }

  private completion(outcome: IdempotentOutcome) {
    const response = { responseStatus: outcome.status, responseBody: JSON.stringify(outcome.body) };
    if (this.optimistic) {
      // A plain insert: if the key is already taken, the primary key throws and the batch rolls back.
      const createdAt = this.optimistic.now.toISOString();
      return this.db.insert(idempotencyRecords).values({
        scope: this.scope,
        idempotencyKey: this.key,
        requestHash: this.optimistic.requestHash,
        state: "DONE",
        createdAt,
        lockedUntil: createdAt,
        ...response,
      });
    }
    return this.db
      .update(idempotencyRecords)
      .set({ state: "DONE", ...response })
      .where(and(eq(idempotencyRecords.scope, this.scope), eq(idempotencyRecords.idempotencyKey, this.key)));
  }
}

/** What "the same request" means under one key: the hash of its canonical parameters. */
export function hashRequest(request: unknown): Promise<string> {
  return sha256Hex(JSON.stringify(request));
}

function respond(outcome: IdempotentOutcome, replayed: boolean): Response {
  const headers: Record<string, string> = {
    "content-type": outcome.status >= 400 ? PROBLEM_CONTENT_TYPE : "application/json",
  };
  if (replayed) headers[REPLAYED_HEADER] = "true";
  return new Response(JSON.stringify(outcome.body), { status: outcome.status, headers });
}

type IdempotencyRecord = typeof idempotencyRecords.$inferSelect;

function findRecord(db: Db, scope: string, key: string): Promise<IdempotencyRecord | undefined> {
  return db.query.idempotencyRecords.findFirst({
    where: and(eq(idempotencyRecords.scope, scope), eq(idempotencyRecords.idempotencyKey, key)),
  });
}

/** The stored response for a finished request with the same fingerprint; 422 for another request. */
function replayOf(record: IdempotencyRecord, requestHash: string): Response | undefined {
  if (record.requestHash !== requestHash) throw new ApiError("idempotency_key_reused");
  if (record.state !== "DONE") return undefined;
  return respond(
    { status: record.responseStatus ?? 500, body: JSON.parse(record.responseBody ?? "null") },
    true,
  );
}

export interface IdempotentRequest {
  db: Db;
  /** Caller and operation, e.g. `buyer:u_123|orders.create`. */
  scope: string;
  key: string;
  /** The validated request (body and path parameters) whose fingerprint a retry must match. */
  request: unknown;
  now: Date;
}

/**
 * Runs `operation` at most once per (scope, key) and answers retries with its stored outcome.
 * Business failures (any ApiError below 500) are outcomes too: they are stored and replayed. Anything
 * else releases the key, so that a retry after an infrastructure failure starts clean.
 */
export async function runIdempotent(
  { db, scope, key, request, now }: IdempotentRequest,
  operation: (claim: IdempotencyClaim) => Promise<IdempotentOutcome>,
): Promise<Response> {
  const requestHash = await hashRequest(request);
  const lockedUntil = new Date(now.getTime() + IDEMPOTENCY_LOCK_SECONDS * 1000).toISOString();

  const inserted = await db
    .insert(idempotencyRecords)
    .values({
      scope,
      idempotencyKey: key,
      requestHash,
      state: "IN_PROGRESS",
      createdAt: now.toISOString(),
      lockedUntil,
    })
    .onConflictDoNothing()
    .run();

  if (inserted.meta.changes === 0) {
    const existing = await findRecord(db, scope, key);
    if (!existing) throw new ApiError("idempotency_in_progress", "Retry shortly");
    const replay = replayOf(existing, requestHash);
    if (replay) return replay;
    // Still running, unless its holder crashed: take over only a lock that has lapsed, and only once.
    const takeover = await db
      .update(idempotencyRecords)
      .set({ lockedUntil })
      .where(
        and(
          eq(idempotencyRecords.scope, scope),
          eq(idempotencyRecords.idempotencyKey, key),
          eq(idempotencyRecords.state, "IN_PROGRESS"),
          eq(idempotencyRecords.lockedUntil, existing.lockedUntil),
          lt(idempotencyRecords.lockedUntil, now.toISOString()),
        ),
      )
      .run();
    if (takeover.meta.changes === 0) throw new ApiError("idempotency_in_progress");
  }

  const claim = new IdempotencyClaim(scope, key, db);
  let outcome: IdempotentOutcome;
  try {
    outcome = await operation(claim);
  } catch (error) {
    if (error instanceof ApiError && error.status < 500 && error.code !== "idempotency_in_progress") {
      outcome = { status: error.status, body: problemBody(error.code, error.message, error.extensions) };
      await claim.store(outcome);
      return respond(outcome, false);
    }
    await db
      .delete(idempotencyRecords)
      .where(
        and(
          eq(idempotencyRecords.scope, scope),
          eq(idempotencyRecords.idempotencyKey, key),
          eq(idempotencyRecords.state, "IN_PROGRESS"),
        ),
      )
      .run()
      .catch(() => undefined);
    throw error;
  }
  if (!claim.completedInBatch) await claim.store(outcome);
  return respond(outcome, false);
}

const isKeyTaken = (error: unknown) =>
  isConstraintError(error, /idempotency_records\.(scope|idempotency_key)/);

/** The stored answer for a key that is already taken: a replay, a reuse (422) or still running (409). */
async function answerForTakenKey(db: Db, scope: string, key: string, requestHash: string): Promise<Response> {
  const existing = await findRecord(db, scope, key);
  const replay = existing && replayOf(existing, requestHash);
  if (!replay) throw new ApiError("idempotency_in_progress", "Retry shortly");
  return replay;
}

/**
 * The same contract as `runIdempotent`, in one round trip less, for operations whose effect is a single D1
 * batch: nothing is written before the operation; its batch inserts the key's record (first) together
 * with the effect. A retry, or a concurrent duplicate, fails on the record's primary key and is answered
 * with the stored outcome, so duplicates that overlap are replays rather than 409s. Business failures are
 * stored with an insert that yields to whichever request stored first.
 */
export async function runIdempotentInBatch(
  { db, scope, key, request, now }: IdempotentRequest,
  operation: (claim: IdempotencyClaim) => Promise<IdempotentOutcome>,
): Promise<Response> {
  const requestHash = await hashRequest(request);
  const claim = new IdempotencyClaim(scope, key, db, { requestHash, now });
  let outcome: IdempotentOutcome;
  try {
    outcome = await operation(claim);
  } catch (error) {
    if (isKeyTaken(error)) return answerForTakenKey(db, scope, key, requestHash);
    if (!(error instanceof ApiError) || error.status >= 500 || error.code === "idempotency_in_progress")
      throw error;
    outcome = { status: error.status, body: problemBody(error.code, error.message, error.extensions) };
    if (!(await claim.storeIfAbsent(outcome))) return answerForTakenKey(db, scope, key, requestHash);
    return respond(outcome, false);
  }
  if (!claim.completedInBatch)
    throw new Error("invariant: an in-batch idempotent operation must commit its claim");
  return respond(outcome, false);
}

/** Bounded clean-up of stored outcomes past retention; returns how many rows went. */
export async function purgeIdempotencyRecords(db: Db, now: Date, limit: number): Promise<number> {
  const cutoff = new Date(now.getTime() - IDEMPOTENCY_RETENTION_SECONDS * 1000).toISOString();
  const result = await db.run(
    // A bounded delete: SQLite's DELETE … LIMIT is not compiled into D1, so select the victims first.
    sql`DELETE FROM idempotency_records WHERE rowid IN (
      SELECT rowid FROM idempotency_records WHERE created_at < ${cutoff} AND state = 'DONE' LIMIT ${limit})`,
  );
  return result.meta.changes;
}
