import { eq, sql } from "drizzle-orm";
import { ApiError } from "../errors";
import { newId } from "../ids";
import type { OperatorRole } from "../types/domain";
import { type Db, isConstraintError } from "./client";
import { loginThrottle, operators } from "./schema";

export type OperatorRow = typeof operators.$inferSelect;

export async function findOperatorByUsername(db: Db, username: string): Promise<OperatorRow | undefined> {
  // The column is COLLATE NOCASE, so this matches regardless of case.
  return db.query.operators.findFirst({ where: eq(operators.username, username) });
}

export interface NewOperator {
  username: string;
  passwordHash: string;
  roles: OperatorRole[];
  eventIds: string[];
}

export async function insertOperator(db: Db, input: NewOperator, now: Date): Promise<OperatorRow> {
  try {
    const [row] = await db
      .insert(operators)
      .values({
        id: newId("opr"),
        username: input.username,
        passwordHash: input.passwordHash,
        roles: input.roles,
        eventIds: input.eventIds,
        createdAt: now.toISOString(),
      })
      .returning();
    if (!row) throw new Error("insert returned no row");
    return row;
  } catch (error) {
    if (isConstraintError(error, /UNIQUE.*operators\.username/i)) throw new ApiError("username_taken");
    throw error;
  }
}

/** Failed logins allowed per username inside one window before further attempts are refused. */
export const MAX_FAILED_LOGINS = 5;
export const LOGIN_WINDOW_SECONDS = 15 * 60;

/** Seconds until `username` may try again, or 0 when it is not throttled. */
export async function loginRetryAfterSeconds(db: Db, username: string, now: Date): Promise<number> {
  const row = await db.query.loginThrottle.findFirst({ where: eq(loginThrottle.username, username) });
  if (!row || row.failures < MAX_FAILED_LOGINS) return 0;
  const windowEnds = Date.parse(row.windowStartedAt) + LOGIN_WINDOW_SECONDS * 1000;
  return Math.max(0, Math.ceil((windowEnds - now.getTime()) / 1000));
}

/** Counts a failure in one atomic upsert: a lapsed window restarts at 1, so concurrent failures all count. */
export async function recordFailedLogin(db: Db, username: string, now: Date): Promise<void> {
  const timestamp = now.toISOString();
  const windowStart = new Date(now.getTime() - LOGIN_WINDOW_SECONDS * 1000).toISOString();
  await db
    .insert(loginThrottle)
    .values({ username, failures: 1, windowStartedAt: timestamp })
    .onConflictDoUpdate({
      target: loginThrottle.username,
      set: {
        failures: sql`CASE WHEN ${loginThrottle.windowStartedAt} < ${windowStart} THEN 1 ELSE ${loginThrottle.failures} + 1 END`,
        windowStartedAt: sql`CASE WHEN ${loginThrottle.windowStartedAt} < ${windowStart} THEN ${timestamp} ELSE ${loginThrottle.windowStartedAt} END`,
      },
    })
    .run();
}

export async function clearFailedLogins(db: Db, username: string): Promise<void> {
  await db.delete(loginThrottle).where(eq(loginThrottle.username, username)).run();
}
