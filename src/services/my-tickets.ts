import { getDb } from "../db/client";
import { listTicketsForUser, ticketStatus } from "../db/tickets";
import { placedNear } from "../domain/placement";
import type { Env } from "../env";
import type { HeldCount } from "../objects/ticket-holder";
import type { Ticket } from "../types/domain";

/**
 * A buyer's tickets with remaining uses exactly as of every scan that has returned, in two calls whatever
 * their number: the read model (D1), which trails the ticket objects by seconds, then the buyer's holder
 * object, which every ticket object pushes its counts to before a change's answer leaves it. Per function
 * the higher version wins, so neither a lagging read model nor a stale push can show an older count.
 */
export async function listTicketsWithLiveUses(env: Env, userId: string): Promise<Ticket[]> {
  const listed = await listTicketsForUser(getDb(env.DB), userId);
  if (listed.length === 0) return [];
  // Often this is the holder's first call: the hint creates it near the newest ticket's venue (ignored
  // once it exists), so the pushes from that venue's ticket objects stay one short hop.
  const holder = env.TICKET_HOLDERS.get(
    env.TICKET_HOLDERS.idFromName(userId),
    placedNear(listed[0]?.venueRegion),
  );
  const held = new Map<string, HeldCount>();
  for (const count of await holder.counts()) held.set(`${count.ticketCode}\u0000${count.function}`, count);
  return listed.map(({ ticket, usesVersions }) => {
    const entitlements = ticket.entitlements.map((entitlement) => {
      const newer = held.get(`${ticket.code}\u0000${entitlement.function}`);
      const readModelVersion = usesVersions.get(entitlement.function) ?? 0;
      return newer && newer.version > readModelVersion
        ? { ...entitlement, remaining_uses: newer.remainingUses }
        : entitlement;
    });
    return { ...ticket, entitlements, status: ticketStatus(entitlements) };
  });
}
