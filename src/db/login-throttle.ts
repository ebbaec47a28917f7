import { and, eq, lte, type SQL, sql } from "drizzle-orm";
import type { Db, Statement } from "./client";
import { loginAttempts } from "./schema";

/** Attempts from one (username, address) that go straight to the password check. */
export const LOGIN_FREE_ATTEMPTS = 5;
/** The wait after the last free attempt; it doubles with every further attempt admitted. */
export const LOGIN_BACKOFF_BASE_SECONDS = 30;
export const LOGIN_BACKOFF_MAX_SECONDS = 15 * 60;
/** A streak with no admitted attempt for this long starts afresh, as after a success. */
export const LOGIN_STREAK_RESET_SECONDS = 60 * 60;
/** Without `CF-Connecting-IP` (only outside Cloudflare) every caller shares one address. */
export const UNKNOWN_CLIENT_ADDRESS = "unknown";
/** An IPv6 address is at most 45 characters; anything longer is not an address Cloudflare set. */
export const MAX_CLIENT_ADDRESS_CHARS = 64;

// The doubling is a shift; past this many doublings the wait is at its cap anyway (30 s << 5 > 15 min),
// and the bound keeps the shift far from overflowing SQLite's 64-bit integers.
const MAX_BACKOFF_DOUBLINGS = 20;

// A streak must outlive its longest wait, or waiting out the cap would hand back the free attempts.
if (LOGIN_STREAK_RESET_SECONDS <= LOGIN_BACKOFF_MAX_SECONDS) {
  throw new Error("invariant: LOGIN_STREAK_RESET_SECONDS must exceed LOGIN_BACKOFF_MAX_SECONDS");
}

export type LoginAttemptDecision =
  | { admitted: true }
  /** `refused` counts the refusals in this streak: 1 for the first, which is the one worth auditing. */
  | { admitted: false; retryAfterSeconds: number; refused: number };

/** The address a login comes from, as Cloudflare reports it, bounded and never empty. */
export function clientAddressFrom(header: string | undefined): string {
  const address = header?.trim().slice(0, MAX_CLIENT_ADDRESS_CHARS);
  return address ? address : UNKNOWN_CLIENT_ADDRESS;
}

/** When the next attempt may come, after the `attempts`-th admitted one of a streak, as SQL. */
function retryAtAfter(attempts: SQL, nowMs: number): SQL {
  const free = LOGIN_FREE_ATTEMPTS;
  const baseMs = LOGIN_BACKOFF_BASE_SECONDS * 1000;
  const maxMs = LOGIN_BACKOFF_MAX_SECONDS * 1000;
  return sql`CASE WHEN ${attempts} < ${free} THEN 0
    ELSE ${nowMs} + MIN(${maxMs}, ${baseMs} << MIN(${attempts} - ${free}, ${MAX_BACKOFF_DOUBLINGS})) END`;
}

/**
 * Reserves one login attempt for (username, address) BEFORE the password is checked, in one upsert that
 * counts it and answers whether it is admitted. Writes to one row are serialized, so of N attempts sent
 * at once at most the free ones are admitted, however they interleave. The first `LOGIN_FREE_ATTEMPTS`
 * of a streak are admitted at once; each later one only after a wait that doubles from
 * `LOGIN_BACKOFF_BASE_SECONDS` up to `LOGIN_BACKOFF_MAX_SECONDS`. Refused attempts only bump a counter.
 */
export async function reserveLoginAttempt(
  db: Db,
  username: string,
  clientAddress: string,
  now: Date,
): Promise<LoginAttemptDecision> {
  const nowMs = now.getTime();
  const t = loginAttempts;
  // SET expressions all read the row as it was before this statement, so each CASE sees the same state.
  const lapsed = sql`${t.admittedAtMs} <= ${nowMs - LOGIN_STREAK_RESET_SECONDS * 1000}`;
  const admitted = sql`(${lapsed} OR ${t.retryAtMs} <= ${nowMs})`;
  const nextAttempts = sql`(CASE WHEN ${lapsed} THEN 1 ELSE ${t.attempts} + 1 END)`;
  const [row] = await db
    .insert(t)
    .values({
      username,
      clientAddress,
      attempts: 1,
      refused: 0,
      latestAdmitted: true,
      admittedAtMs: nowMs,
      retryAtMs: retryAtAfter(sql`1`, nowMs),
    })
    .onConflictDoUpdate({
      target: [t.username, t.clientAddress],
      set: {
        attempts: sql`CASE WHEN ${admitted} THEN ${nextAttempts} ELSE ${t.attempts} END`,
        refused: sql`CASE WHEN ${lapsed} THEN 0 WHEN ${admitted} THEN ${t.refused} ELSE ${t.refused} + 1 END`,
        latestAdmitted: sql`CASE WHEN ${admitted} THEN 1 ELSE 0 END`,
        admittedAtMs: sql`CASE WHEN ${admitted} THEN ${nowMs} ELSE ${t.admittedAtMs} END`,
        retryAtMs: sql`CASE WHEN ${admitted} THEN ${retryAtAfter(nextAttempts, nowMs)} ELSE ${t.retryAtMs} END`,
      },
    })
    .returning({ latestAdmitted: t.latestAdmitted, refused: t.refused, retryAtMs: t.retryAtMs });
  if (!row) throw new Error("invariant: an upsert returns its row");
  if (row.latestAdmitted) return { admitted: true };
  // A refused attempt always has a wait ahead of it; round up so a client that waits is never early.
  const retryAfterSeconds = Math.max(1, Math.ceil((row.retryAtMs - nowMs) / 1000));
  return { admitted: false, retryAfterSeconds, refused: row.refused };
}

/** A success ends the streak of (username, address): as a statement, to commit with the login's audit entry. */
export function clearLoginAttempts(db: Db, username: string, clientAddress: string): Statement {
  return db
    .delete(loginAttempts)
    .where(and(eq(loginAttempts.username, username), eq(loginAttempts.clientAddress, clientAddress)));
}

/** Deletes streaks that have been quiet long enough to start afresh anyway; answers how many. */
export async function forgetQuietLoginStreaks(db: Db, now: Date): Promise<number> {
  const result = await db
    .delete(loginAttempts)
    .where(lte(loginAttempts.admittedAtMs, now.getTime() - LOGIN_STREAK_RESET_SECONDS * 1000))
    .run();
  return result.meta.changes;
}
