// What `npm run admin:create` writes: an admin operator and its `operator.create` audit entry, as SQL
// that `wrangler d1 execute` runs against the local or the remote D1. Pure (no Node APIs), so the workerd
// test suite runs the very same statements against the app's schema and triggers.
//
// The audit entry is chained exactly as src/queues/audit-chain.ts chains one (same hash, same details as
// createOperator writes), onto the tail read just before. Both inserts are guarded so that, whichever of
// them runs or fails, there is never an operator without its entry nor an entry without its operator:
//   1. the entry goes in only if no operator has the username yet; the append trigger refuses it (and
//      the caller retries with a fresh tail) if another entry was appended since the tail was read;
//   2. the operator goes in only if its entry is there.
import { AUDIT_GENESIS_HASH, auditEntryHash, canonicalJson } from "../src/db/audit";
import { newId } from "../src/ids";

/** Who the audit log names as the author of an operator created from the command line. */
export const ADMIN_CREATE_ACTOR = "system:admin-create";
const ADMIN_ROLES = ["admin"];

/** The audit log's last entry, as the chain continues from it; null for an empty log. */
export interface AuditTail {
  seq: number;
  ts: string;
  hash: string;
}

export interface FirstAdmin {
  operator: { id: string; username: string; passwordHash: string; createdAt: string };
  audit: {
    seq: number;
    id: string;
    ts: string;
    actor: string;
    action: string;
    target: string;
    details: string;
    prevHash: string;
    hash: string;
  };
}

export async function firstAdminRecords(input: {
  username: string;
  passwordHash: string;
  now: Date;
  tail: AuditTail | null;
}): Promise<FirstAdmin> {
  const nowIso = input.now.toISOString();
  const operatorId = newId("opr");
  const unhashed = {
    seq: (input.tail?.seq ?? 0) + 1,
    id: newId("aud"),
    // Never before the tail, as appendAuditEntries does (the append trigger refuses a step back in time).
    ts: input.tail && input.tail.ts > nowIso ? input.tail.ts : nowIso,
    actor: ADMIN_CREATE_ACTOR,
    action: "operator.create",
    target: operatorId,
    // The details createOperator writes; never the password.
    details: canonicalJson({ username: input.username, roles: ADMIN_ROLES, event_ids: [] }),
    prevHash: input.tail?.hash ?? AUDIT_GENESIS_HASH,
  };
  return {
    operator: {
      id: operatorId,
      username: input.username,
      passwordHash: input.passwordHash,
      createdAt: nowIso,
    },
    audit: { ...unhashed, hash: await auditEntryHash(unhashed) },
  };
}

/** An SQL string literal. */
export const sqlText = (value: string) => `'${value.replaceAll("'", "''")}'`;

/** The two guarded inserts, in order (see the top of this file). */
export function firstAdminStatements({ operator, audit }: FirstAdmin): string[] {
  return [
    "INSERT INTO audit_log (seq, id, ts, actor, action, target, details, prev_hash, hash) " +
      `SELECT ${audit.seq}, ${sqlText(audit.id)}, ${sqlText(audit.ts)}, ${sqlText(audit.actor)}, ` +
      `${sqlText(audit.action)}, ${sqlText(audit.target)}, ${sqlText(audit.details)}, ` +
      `${sqlText(audit.prevHash)}, ${sqlText(audit.hash)} ` +
      `WHERE NOT EXISTS (SELECT 1 FROM operators WHERE username = ${sqlText(operator.username)});`,
    "INSERT INTO operators (id, username, password_hash, roles, event_ids, active, created_at, " +
      "credential_version, updated_at) " +
      `SELECT ${sqlText(operator.id)}, ${sqlText(operator.username)}, ${sqlText(operator.passwordHash)}, ` +
      `${sqlText(JSON.stringify(ADMIN_ROLES))}, '[]', 1, ${sqlText(operator.createdAt)}, 1, ` +
      `${sqlText(operator.createdAt)} WHERE EXISTS (SELECT 1 FROM audit_log WHERE id = ${sqlText(audit.id)});`,
  ];
}
