import { and, asc, eq, gt, isNull, sql } from "drizzle-orm";
import { newId } from "../ids";
import type { EventMessage } from "../queues/messages";
import { isOperatorRole, type Operator, type OperatorRole } from "../types/domain";
import { commitAudited } from "./audit";
import { type Db, isConstraintError, type Statement } from "./client";
import { operators, validatorSessions } from "./schema";

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

export type CreateOperatorResult = { ok: true; operator: Operator } | { ok: false; code: "username_taken" };

/**
 * Creates an operator and the request for its audit entry in one batch: there is no operator without
 * its entry.
 */
export async function createOperator(
  db: Db,
  events: Queue<EventMessage>,
  input: NewOperator,
  actor: string,
  now: Date,
): Promise<CreateOperatorResult> {
  const row: OperatorRow = {
    id: newId("opr"),
    username: input.username,
    passwordHash: input.passwordHash,
    roles: [...new Set(input.roles)],
    eventIds: [...new Set(input.eventIds)],
    active: true,
    createdAt: now.toISOString(),
    credentialVersion: 1,
    updatedAt: now.toISOString(),
  };
  try {
    // The password stays out of the details: the log is kept forever.
    await commitAudited(
      db,
      events,
      {
        actor,
        action: "operator.create",
        target: row.id,
        details: { username: row.username, roles: row.roles, event_ids: row.eventIds },
      },
      now,
      [db.insert(operators).values(row)],
    );
  } catch (error) {
    if (isConstraintError(error, /UNIQUE.*operators\.username/i))
      return { ok: false, code: "username_taken" };
    throw error;
  }
  return { ok: true, operator: toOperator(row) };
}

/** The operator as admins see it: never the password hash. */
export function toOperator(row: OperatorRow): Operator {
  return {
    operator_id: row.id,
    username: row.username,
    roles: row.roles.filter(isOperatorRole),
    event_ids: row.eventIds,
    active: row.active,
    created_at: row.createdAt,
    updated_at: row.updatedAt ?? row.createdAt,
  };
}

export async function findOperator(db: Db, id: string): Promise<OperatorRow | undefined> {
  return db.query.operators.findFirst({ where: eq(operators.id, id) });
}

export const OPERATOR_PAGE_MAX = 200;

/** One page of operators in id order; `after` is the last id of the previous page. */
export async function listOperators(
  db: Db,
  page: { after?: string; limit: number },
): Promise<{ operators: Operator[]; next: string | null }> {
  const rows = await db
    .select()
    .from(operators)
    .where(page.after === undefined ? undefined : gt(operators.id, page.after))
    .orderBy(asc(operators.id))
    .limit(page.limit + 1);
  const shown = rows.slice(0, page.limit);
  return {
    operators: shown.map(toOperator),
    next: rows.length > page.limit ? (shown.at(-1)?.id ?? null) : null,
  };
}

/** Closes every open session of an operator, in the batch that takes their access away. */
function closeOperatorSessions(db: Db, operatorId: string, now: Date): Statement {
  return db
    .update(validatorSessions)
    .set({ closedAt: sql`max(${now.toISOString()}, ${validatorSessions.openedAt})` })
    .where(and(eq(validatorSessions.operatorId, operatorId), isNull(validatorSessions.closedAt)));
}

export interface OperatorChange {
  active?: boolean;
  roles?: OperatorRole[];
  eventIds?: string[];
  /** A new PBKDF2 hash: a password reset. */
  passwordHash?: string;
}

/**
 * Applies an admin's change to an operator, with the request for its audit entry, in one batch. A
 * deactivation or a password reset moves the credential version on (every earlier token is refused) and
 * closes the operator's open sessions in the same batch; a change of roles or event ids reaches every
 * isolate through the record itself (src/services/current-operator.ts). Returns undefined for an unknown
 * operator.
 */
export async function changeOperator(
  db: Db,
  events: Queue<EventMessage>,
  id: string,
  change: OperatorChange,
  actor: string,
  now: Date,
): Promise<Operator | undefined> {
  const current = await findOperator(db, id);
  if (!current) return undefined;
  const timestamp = now.toISOString();
  const revokesTokens = change.passwordHash !== undefined || (change.active === false && current.active);
  const next: OperatorRow = {
    ...current,
    active: change.active ?? current.active,
    roles: change.roles ?? current.roles,
    eventIds: change.eventIds ?? current.eventIds,
    passwordHash: change.passwordHash ?? current.passwordHash,
    credentialVersion: current.credentialVersion + (revokesTokens ? 1 : 0),
    updatedAt: timestamp,
  };
  // What changed, from → to; never the password or its hash: the log is kept forever.
  const details: Record<string, unknown> = {};
  if (next.active !== current.active) details.active = { from: current.active, to: next.active };
  if (change.roles) details.roles = { from: current.roles, to: next.roles };
  if (change.eventIds) details.event_ids = { from: current.eventIds, to: next.eventIds };
  if (change.passwordHash !== undefined) details.password_reset = true;
  if (revokesTokens) details.sessions_closed = true;
  const statements: Statement[] = [
    db
      .update(operators)
      .set({
        active: next.active,
        roles: next.roles,
        eventIds: next.eventIds,
        passwordHash: next.passwordHash,
        // Relative, not the value read above: two concurrent revocations both move it on.
        credentialVersion: revokesTokens
          ? sql`${operators.credentialVersion} + 1`
          : operators.credentialVersion,
        updatedAt: timestamp,
      })
      .where(eq(operators.id, id)),
  ];
  if (revokesTokens) statements.push(closeOperatorSessions(db, id, now));
  await commitAudited(
    db,
    events,
    {
      actor,
      action: change.passwordHash !== undefined ? "operator.password_reset" : "operator.update",
      target: id,
      details,
    },
    now,
    statements,
  );
  return toOperator(next);
}
