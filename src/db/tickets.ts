import { asc, desc, eq, inArray, sql } from "drizzle-orm";
import type { DoLocationHint } from "../domain/placement";
import { generateTicketCode } from "../domain/ticket-code";
import type { Entitlement, Ticket } from "../types/domain";
import type { Db, Statement } from "./client";
import { products, ticketEntitlements, tickets } from "./schema";

/** Tickets listed by GET /my/tickets, newest first: bounds the read for a buyer with a long history. */
export const MAX_TICKETS_LISTED = 200;

export interface TicketIssue {
  orderId: string;
  userId: string;
  lines: { productId: string; quantity: number }[];
  now: Date;
}

/**
 * The statements that issue an order's tickets (one per unit, numbered 1..n in line order) with their
 * entitlements. Meant for the batch that settles the order as PAID: (order_id, seq) is unique, so a
 * second issuance for the order throws and rolls its batch back. Two statements whatever the order's
 * size: the tickets travel as one JSON parameter, and the entitlements are expanded in SQL from each
 * product's `functions`, so D1's 100-parameter limit never splits the issuance.
 */
export function issueTicketsStatements(
  db: Db,
  issue: TicketIssue,
): { codes: string[]; statements: Statement[] } {
  const issued: { code: string; seq: number; product_id: string }[] = [];
  for (const line of issue.lines) {
    for (let unit = 0; unit < line.quantity; unit++) {
      issued.push({ code: generateTicketCode(), seq: issued.length + 1, product_id: line.productId });
    }
  }
  const issuedAt = issue.now.toISOString();
  // Column order follows the table definitions in schema.ts, which INSERT … SELECT fills in order.
  const statements: Statement[] = [
    db.insert(tickets).select(sql`
      SELECT json_extract(value, '$.code'), ${issue.orderId}, json_extract(value, '$.seq'),
             json_extract(value, '$.product_id'), ${issue.userId}, ${issuedAt}
      FROM json_each(${JSON.stringify(issued)})`),
    db.insert(ticketEntitlements).select(sql`
      SELECT t.code, json_extract(f.value, '$.function'), json_extract(f.value, '$.uses'),
             json_extract(f.value, '$.uses'), 0, NULL
      FROM tickets AS t
      JOIN products AS p ON p.id = t.product_id
      JOIN json_each(p.functions) AS f
      WHERE t.order_id = ${issue.orderId}`),
  ];
  return { codes: issued.map((ticket) => ticket.code), statements };
}

export function ticketStatus(entitlements: readonly Entitlement[]): Ticket["status"] {
  return entitlements.some((entitlement) => entitlement.remaining_uses > 0) ? "ACTIVE" : "USED_UP";
}

/** A listed ticket and where its object belongs (its product's venue region). */
export interface ListedTicket {
  ticket: Ticket;
  venueRegion: DoLocationHint | null;
}

/** A buyer's tickets, newest first, at most `limit`. Tickets and entitlements are read in one snapshot. */

export async function listTicketsForUser(
  db: Db,
  userId: string,
  limit = MAX_TICKETS_LISTED,
): Promise<ListedTicket[]> {
  const newestFirst = [desc(tickets.issuedAt), asc(tickets.orderId), asc(tickets.seq)];
  const listedCodes = db
    .select({ code: tickets.code })
    .from(tickets)
    .where(eq(tickets.userId, userId))
    .orderBy(...newestFirst)
    .limit(limit);
  const [rows, entitlementRows] = await db.batch([
    db
      .select({
        code: tickets.code,
        orderId: tickets.orderId,
        productId: tickets.productId,
        productName: products.name,
        issuedAt: tickets.issuedAt,
        venueRegion: products.venueRegion,
      })
      .from(tickets)
      .innerJoin(products, eq(products.id, tickets.productId))
      .where(eq(tickets.userId, userId))
      .orderBy(...newestFirst)
      .limit(limit),
    db
      .select()
      .from(ticketEntitlements)
      .where(inArray(ticketEntitlements.ticketCode, listedCodes))
      .orderBy(asc(ticketEntitlements.ticketCode), asc(ticketEntitlements.function)),
  ]);
  const byCode = new Map<string, Entitlement[]>();
  for (const row of entitlementRows) {
    const list = byCode.get(row.ticketCode) ?? [];
    list.push({ function: row.function, total_uses: row.totalUses, remaining_uses: row.remainingUses });
    byCode.set(row.ticketCode, list);
  }
  return rows.map((row) => {
    const entitlements = byCode.get(row.code) ?? [];
    return {
      ticket: {
        code: row.code,
        order_id: row.orderId,
        product_id: row.productId,
        product_name: row.productName,
        status: ticketStatus(entitlements),
        issued_at: row.issuedAt,
        entitlements,
      },
      venueRegion: row.venueRegion,
    };
  });
}

/**
 * A ticket's owner, its functions and those used up (what its QR tokens carry: a gate offline refuses
 * the used-up ones), in one read of the read model. The read model trails the ticket's object by
 * seconds; an offline kit carries every count that changed within a token's reach, which covers that.
 */
export async function findTicketForQr(
  db: Db,
  code: string,
): Promise<
  { userId: string; functions: string[]; usedUp: string[]; venueRegion: DoLocationHint | null } | undefined
> {
  const rows = await db
    .select({
      userId: tickets.userId,
      fn: ticketEntitlements.function,
      remaining: ticketEntitlements.remainingUses,
      venueRegion: products.venueRegion,
    })
    .from(tickets)
    .innerJoin(ticketEntitlements, eq(ticketEntitlements.ticketCode, tickets.code))
    .innerJoin(products, eq(products.id, tickets.productId))
    .where(eq(tickets.code, code))
    .orderBy(asc(ticketEntitlements.function));
  const first = rows[0];
  return (
    first && {
      userId: first.userId,
      functions: rows.map((row) => row.fn),
      usedUp: rows.filter((row) => row.remaining <= 0).map((row) => row.fn),
      venueRegion: first.venueRegion,
    }
  );
}

export interface ReportedUses {
  code: string;
  fn: string;
  remainingUses: number;
  /** The object's change count (absent in events from before annulments: those only lower the count). */
  usesVersion?: number;
}

/**
 * Moves the tickets' read model to what their objects reported after scans and annulments, in ONE
 * statement for a whole queue batch. Per ticket and function the newest report wins (the highest
 * `usesVersion`), and a row changes only when that report is newer than what it holds, so redelivered or
 * reordered events leave the same result. `changedAt` (now) dates the change for offline kits' deltas.
 * A report without a version (written before annulments, when uses only went down) can only lower the
 * count, as it always could.
 */
export function applyReportedUsesStatement(db: Db, reports: ReportedUses[], changedAt: Date): Statement {
  const newest = sql`(
    SELECT code, fn, remaining_uses, uses_version, lowest_unversioned FROM (
      SELECT code, fn, remaining_uses, uses_version,
             MIN(remaining_uses) OVER (PARTITION BY code, fn) AS lowest_unversioned,
             ROW_NUMBER() OVER (PARTITION BY code, fn ORDER BY uses_version DESC) AS newest_first
      FROM (
        SELECT json_extract(value, '$.code') AS code, json_extract(value, '$.fn') AS fn,
               json_extract(value, '$.remainingUses') AS remaining_uses,
               coalesce(json_extract(value, '$.usesVersion'), -1) AS uses_version
        FROM json_each(${JSON.stringify(reports)})
      )
    ) WHERE newest_first = 1
  ) AS reported`;
  return db
    .update(ticketEntitlements)
    .set({
      remainingUses: sql`CASE WHEN reported.uses_version < 0
        THEN MIN(${ticketEntitlements.remainingUses}, reported.lowest_unversioned)
        ELSE reported.remaining_uses END`,
      usesVersion: sql`MAX(${ticketEntitlements.usesVersion}, reported.uses_version)`,
      usesChangedAt: changedAt.toISOString(),
    })
    .from(newest)
    .where(
      sql`${ticketEntitlements.ticketCode} = reported.code AND ${ticketEntitlements.function} = reported.fn
        AND (reported.uses_version < 0 OR reported.uses_version > ${ticketEntitlements.usesVersion})`,
    );
}
