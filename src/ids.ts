import { customAlphabet } from "nanoid";

// Opaque, prefixed ids: 20 characters from a 32-letter lowercase alphabet is 100 bits of randomness,
// so ids are unguessable and never collide in practice.
const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const ID_RANDOM_LENGTH = 20;
const randomPart = customAlphabet(ID_ALPHABET, ID_RANDOM_LENGTH);

export const ID_PREFIXES = ["prd", "ord", "top", "txn", "ses", "red", "opr", "dev", "rct", "aud"] as const;
export type IdPrefix = (typeof ID_PREFIXES)[number];

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomPart()}`;
}
