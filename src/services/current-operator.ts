import { eq } from "drizzle-orm";
import { LRUCache } from "lru-cache";
import type { OperatorClaims, OperatorTokenClaims } from "../auth/operator-token";
import type { Db } from "../db/client";
import { operators } from "../db/schema";
import { isOperatorRole, type OperatorRole } from "../types/domain";

/**
 * How long an isolate trusts an operator record it has read. The contract allows a deactivation, a password
 * reset or a change of roles to take up to 5 s to reach every isolate; the isolate that makes the change
 * forgets its copy at once. Without this, every scan and deduction would pay a D1 round trip for it.
 */
export const OPERATOR_RECORD_CACHE_MS = 4_000;
/** Far more operators than one isolate serves at once. */
const OPERATOR_RECORD_CACHE_MAX = 5_000;

interface OperatorRecord {
  active: boolean;
  credentialVersion: number;
  roles: OperatorRole[];
  eventIds: string[];
}

const records = new LRUCache<string, { record: OperatorRecord | null; readAtMs: number }>({
  max: OPERATOR_RECORD_CACHE_MAX,
});

async function readOperatorRecord(db: Db, operatorId: string): Promise<OperatorRecord | null> {
  const [row] = await db
    .select({
      active: operators.active,
      credentialVersion: operators.credentialVersion,
      roles: operators.roles,
      eventIds: operators.eventIds,
    })
    .from(operators)
    .where(eq(operators.id, operatorId))
    .limit(1);
  return row ? { ...row, roles: row.roles.filter(isOperatorRole) } : null;
}

/**
 * The operator a verified token acts as, with the roles and event ids of the operator record as read at
 * most OPERATOR_RECORD_CACHE_MS ago; undefined when the operator is gone, deactivated, or the token was
 * issued under an earlier credential version (a password reset or deactivation since).
 */
export async function currentOperator(
  db: Db,
  token: OperatorTokenClaims,
  nowMs: number,
): Promise<OperatorClaims | undefined> {
  let entry = records.get(token.operatorId);
  if (!entry || nowMs - entry.readAtMs >= OPERATOR_RECORD_CACHE_MS || nowMs < entry.readAtMs) {
    entry = { record: await readOperatorRecord(db, token.operatorId), readAtMs: nowMs };
    records.set(token.operatorId, entry);
  }
  const { record } = entry;
  if (!record?.active || record.credentialVersion !== token.credentialVersion) return undefined;
  return { operatorId: token.operatorId, roles: record.roles, eventIds: record.eventIds };
}

/** After a change to an operator made through this isolate: the next request reads the record afresh. */
export function forgetOperator(operatorId: string): void {
  records.delete(operatorId);
}
