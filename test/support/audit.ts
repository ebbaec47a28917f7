import { env } from "cloudflare:workers";
import { eventually } from "./eventually";

// Request paths commit a request for their audit entry (an `audit.requested` row in D1's outbox) and the
// queue consumer chains it a moment later: a test reads the log after the consumer has caught up.

/** Audit entries requested through D1's outbox that are not in the chain yet. */
export async function pendingAuditRequests(): Promise<number> {
  const row = await env.DB.prepare(
    "SELECT count(*) AS n FROM outbox WHERE json_extract(payload, '$.type') = 'audit.requested' " +
      "AND json_extract(payload, '$.audit.id') NOT IN (SELECT id FROM audit_log)",
  ).first<{ n: number }>();
  return row?.n ?? 0;
}

/** Waits until every audit entry requested so far is in the chain; throws when that takes too long. */
export async function auditSettled(timeoutMs = 10_000): Promise<void> {
  const pending = await eventually(pendingAuditRequests, (n) => n === 0, timeoutMs);
  if (pending !== 0) throw new Error(`${pending} requested audit entries not chained after ${timeoutMs} ms`);
}

export interface RequestedAudit {
  outbox_id: string;
  id: string;
  actor: string;
  action: string;
  target: string | null;
}

/** The audit entries requested in D1's outbox (those matching `filter`), in the order they were committed. */
export async function auditRequests(
  filter: { actor?: string; action?: string; target?: string } = {},
): Promise<RequestedAudit[]> {
  const fields = Object.entries(filter).filter(([, value]) => value !== undefined);
  const matches = fields.map(([field]) => ` AND json_extract(payload, '$.audit.${field}') = ?`).join("");
  const { results } = await env.DB.prepare(
    "SELECT id AS outbox_id, json_extract(payload, '$.audit.id') AS id, " +
      "json_extract(payload, '$.audit.actor') AS actor, json_extract(payload, '$.audit.action') AS action, " +
      "json_extract(payload, '$.audit.target') AS target FROM outbox " +
      `WHERE json_extract(payload, '$.type') = 'audit.requested'${matches} ORDER BY created_at, rowid`,
  )
    .bind(...fields.map(([, value]) => value))
    .all<RequestedAudit>();
  return results;
}
