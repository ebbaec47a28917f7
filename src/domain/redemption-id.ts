import { customAlphabet } from "nanoid";
import { TICKET_CODE_RANDOM_SYMBOLS, ticketCodeData, ticketCodeFromData } from "./ticket-code";

// A redemption id names its ticket, so a request about a redemption (an annulment) goes straight to the
// ticket's object instead of waiting for the read model to learn where it belongs. Ticket codes are
// Crockford base32 like the ids, so the code's data symbols sit in the id as they are.

const REDEMPTION_PREFIX = "red_";
/** 60 bits per ticket: a ticket has at most millions of redemptions, never near a collision. */
const RANDOM_SYMBOLS = 12;
const randomPart = customAlphabet("0123456789abcdefghjkmnpqrstvwxyz", RANDOM_SYMBOLS);
const REDEMPTION_ID_LENGTH = REDEMPTION_PREFIX.length + TICKET_CODE_RANDOM_SYMBOLS + RANDOM_SYMBOLS;

export function newRedemptionId(ticketCode: string): string {
  return `${REDEMPTION_PREFIX}${ticketCodeData(ticketCode)}${randomPart()}`;
}

/**
 * The ticket a redemption id belongs to; undefined for anything else, including ids minted before ids
 * carried their ticket (20 random symbols), which are found through the redemptions read model instead.
 */
export function ticketCodeOfRedemption(redemptionId: string): string | undefined {
  if (redemptionId.length !== REDEMPTION_ID_LENGTH || !redemptionId.startsWith(REDEMPTION_PREFIX))
    return undefined;
  return ticketCodeFromData(
    redemptionId.slice(REDEMPTION_PREFIX.length, REDEMPTION_PREFIX.length + TICKET_CODE_RANDOM_SYMBOLS),
  );
}
