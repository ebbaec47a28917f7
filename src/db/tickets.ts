import { and, asc, desc, eq, inArray, sql } from "drizzle-orm";
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
             json_extract(f.value, '$.uses')
      FROM tickets AS t
      JOIN products AS p ON p.id = t.product_id
      JOIN json_each(p.functions) AS f
      WHERE t.order_id = ${issue.orderId}`),
  ];
  return { codes: issued.map((ticket) => ticket.code), statements };
}

function ticketStatus(entitlements: Entitlement[]): Ticket["status"] {
  return entitlements.some((entitlement) => entitlement.remaining_uses > 0) ? "ACTIVE" : "USED_UP";
}

/** A buyer's tickets, newest first, at most `limit`. Tickets and entitlements are read in one snapshot. */
export async function listTicketsForUser(
  db: Db,
  userId: string,
  limit = MAX_TICKETS_LISTED,
): Promise<Ticket[]> {
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
      code: row.code,
      order_id: row.orderId,
      product_id: row.productId,
      product_name: row.productName,
      status: ticketStatus(entitlements),
      issued_at: row.issuedAt,
      entitlements,
    };
  });
}

export async function findTicketOwner(db: Db, code: string): Promise<{ userId: string } | undefined> {
  return db.query.tickets.findFirst({ columns: { userId: true }, where: eq(tickets.code, code) });
}

/**
 * Moves a ticket's read model down to what its Durable Object reported after a scan. MIN makes it
 * idempotent and order-insensitive: a redelivered or late event can never raise the count again.
 */
/**
 * The set form of lowerRemainingUsesStatement: one statement for a whole batch of scans. A ticket scanned
 * several times in the batch moves to the lowest count it was reported at, exactly as the single form
 * applied once per event would leave it.
 */
export function lowerRemainingUsesManyStatement(
  db: Db,
  reports: { code: string; fn: string; remainingUses: number }[],
): Statement {
  const reported = sql`(
    SELECT json_extract(value, '$.code') AS code, json_extract(value, '$.fn') AS fn,
           MIN(json_extract(value, '$.remainingUses')) AS remaining_uses
    FROM json_each(${JSON.stringify(reports)})
    GROUP BY 1, 2
  ) AS reported`;
  return db
    .update(ticketEntitlements)
    .set({ remainingUses: sql`MIN(${ticketEntitlements.remainingUses}, reported.remaining_uses)` })
    .from(reported)
    .where(
      sql`${ticketEntitlements.ticketCode} = reported.code AND ${ticketEntitlements.function} = reported.fn`,
    );
}

export function lowerRemainingUsesStatement(
  db: Db,
  code: string,
  fn: string,
  remainingUses: number,
): Statement {
  return db
    .update(ticketEntitlements)
    .set({ remainingUses: sql`MIN(${ticketEntitlements.remainingUses}, ${remainingUses})` })
    .where(and(eq(ticketEntitlements.ticketCode, code), eq(ticketEntitlements.function, fn)));
}
