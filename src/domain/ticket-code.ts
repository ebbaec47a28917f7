// Ticket codes are typed by hand when a camera fails, so they use Crockford's base32 (no I, L, O, U in the
// data; case-insensitive) and end in Crockford's mod-37 check symbol. 37 is prime and larger than the
// alphabet, so every single-symbol substitution and every adjacent transposition changes the remainder:
// a typo is rejected as `invalid_code` instead of being looked up.

const DATA_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** Check values 0–31 reuse the data symbols; 32–36 are Crockford's extra check symbols. */
const CHECK_ALPHABET = `${DATA_ALPHABET}*~$=U`;
const CHECK_MODULUS = 37;
const BITS_PER_SYMBOL = 5;

/** 13 random symbols are 65 bits: unguessable, and still short enough to read out and type. */
export const TICKET_CODE_RANDOM_SYMBOLS = 13;
export const TICKET_CODE_LENGTH = TICKET_CODE_RANDOM_SYMBOLS + 1;
export const TICKET_CODE_RANDOM_BITS = TICKET_CODE_RANDOM_SYMBOLS * BITS_PER_SYMBOL;
/** Inputs longer than this are refused before normalizing: room for separators, never unbounded work. */
export const MAX_TICKET_CODE_INPUT_LENGTH = 32;

/** Letters people type for digits, and separators people add, per Crockford's decoding rules. */
const CONFUSABLES: Record<string, string> = { I: "1", L: "1", O: "0" };
const SEPARATORS = /[-\s]/g;

function checkSymbol(data: string): string {
  let remainder = 0;
  for (const symbol of data) remainder = (remainder * 32 + DATA_ALPHABET.indexOf(symbol)) % CHECK_MODULUS;
  return CHECK_ALPHABET.charAt(remainder);
}

/** A fresh code: uniformly random symbols (256 is a multiple of 32, so masking a byte is unbiased). */
export function generateTicketCode(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(TICKET_CODE_RANDOM_SYMBOLS));
  const data = Array.from(bytes, (byte) => DATA_ALPHABET.charAt(byte & 31)).join("");
  return data + checkSymbol(data);
}

/**
 * The canonical form of a typed code, or undefined when it is malformed or its check symbol does not
 * match. Accepts lower case, `I`/`L` for 1, `O` for 0, and hyphens or spaces between groups.
 */
export function normalizeTicketCode(input: string): string | undefined {
  if (input.length === 0 || input.length > MAX_TICKET_CODE_INPUT_LENGTH) return undefined;
  const compact = input.replace(SEPARATORS, "").toUpperCase();
  if (compact.length !== TICKET_CODE_LENGTH) return undefined;
  const canonical = Array.from(compact, (symbol) => CONFUSABLES[symbol] ?? symbol).join("");
  const data = canonical.slice(0, -1);
  if (![...data].every((symbol) => DATA_ALPHABET.includes(symbol))) return undefined;
  return checkSymbol(data) === canonical.slice(-1) ? canonical : undefined;
}

/** The code's data symbols (the check symbol is derived), lower-cased: how a redemption id carries it. */
export function ticketCodeData(code: string): string {
  return code.slice(0, TICKET_CODE_RANDOM_SYMBOLS).toLowerCase();
}

/** The ticket code whose data symbols are `data` (as ticketCodeData gave them), or undefined. */
export function ticketCodeFromData(data: string): string | undefined {
  const upper = data.toUpperCase();
  if (upper.length !== TICKET_CODE_RANDOM_SYMBOLS || ![...upper].every((s) => DATA_ALPHABET.includes(s))) {
    return undefined;
  }
  return upper + checkSymbol(upper);
}
