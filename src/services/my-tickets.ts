import { getDb } from "../db/client";
import { listTicketsForUser } from "../db/tickets";
import { placedNear } from "../domain/placement";
import type { Env } from "../env";
import type { Ticket } from "../types/domain";

/**
 * A buyer's tickets with remaining uses exactly as of every scan that has returned. D1's read model
 * catches up through the queue a moment after a scan; the ticket's Durable Object is the source of truth,
 * so each ticket that still has uses asks its object (in parallel). An object no scan has reached
 * answers null without touching D1, and then D1 is exact. Used-up tickets are final and skip the call.
 */
export async function listTicketsWithLiveUses(env: Env, userId: string): Promise<Ticket[]> {
  const listed = await listTicketsForUser(getDb(env.DB), userId);
  return Promise.all(
    listed.map(async ({ ticket, venueRegion }) => {
      if (ticket.status === "USED_UP") return ticket;
      // Often the first call a ticket's object gets, from wherever the buyer is: the hint creates it near
      // the venue (and is ignored once it exists), so the gates there reach it in one short hop.
      const stub = env.TICKETS.get(env.TICKETS.idFromName(ticket.code), placedNear(venueRegion));
      const live = await stub.snapshot();
      if (!live) return ticket;
      const entitlements = live.entitlements;
      const status = entitlements.some((e) => e.remaining_uses > 0) ? "ACTIVE" : "USED_UP";
      return { ...ticket, entitlements, status };
    }),
  );
}
