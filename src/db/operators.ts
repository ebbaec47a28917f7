import { eq } from "drizzle-orm";
import { ApiError } from "../errors";
import { newId } from "../ids";
import type { OperatorRole } from "../types/domain";
import { type Db, isConstraintError } from "./client";
import { operators } from "./schema";

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
