import { eq, sql } from "drizzle-orm";
import type { Db, Statement } from "./client";
import { buyerContacts } from "./schema";

/**
 * Remembers the address the buyer's token carried. Added to the batch of the order or top-up the buyer
 * starts, so it costs no round trip; an unchanged address rewrites nothing.
 */
export function rememberBuyerEmailStatement(db: Db, userId: string, email: string, now: Date): Statement {
  return db
    .insert(buyerContacts)
    .values({ userId, email, updatedAt: now.toISOString() })
    .onConflictDoUpdate({
      target: buyerContacts.userId,
      set: { email: sql`excluded.email`, updatedAt: sql`excluded.updated_at` },
      setWhere: sql`${buyerContacts.email} IS NOT excluded.email`,
    });
}

/** Where the buyer's receipts go, if their identity provider ever told us. */
export async function findBuyerEmail(db: Db, userId: string): Promise<string | undefined> {
  const [row] = await db
    .select({ email: buyerContacts.email })
    .from(buyerContacts)
    .where(eq(buyerContacts.userId, userId));
  return row?.email;
}
