/**
 * Where Durable Objects can be asked to live: Cloudflare's location hints
 * (https://developers.cloudflare.com/durable-objects/reference/data-location/#provide-a-location-hint).
 * An object is created near the hint given with its first call and stays there for good; without one, it
 * is created near the Worker that first calls it.
 */
export const DO_LOCATION_HINTS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"] as const;
export type DoLocationHint = (typeof DO_LOCATION_HINTS)[number];

/** What each hint means, for people choosing one (the admin page). */
export const DO_LOCATION_HINT_NAMES: Record<DoLocationHint, string> = {
  wnam: "Western North America",
  enam: "Eastern North America",
  sam: "South America",
  weur: "Western Europe",
  eeur: "Eastern Europe",
  apac: "Asia-Pacific",
  oc: "Oceania",
  afr: "Africa",
  me: "Middle East",
};

/** A region named in a signed claim or a stored column, if it is one; anything else places nothing. */
export function locationHint(value: unknown): DoLocationHint | null {
  return (DO_LOCATION_HINTS as readonly unknown[]).includes(value) ? (value as DoLocationHint) : null;
}

/** The options to get a ticket's object with: near its venue when the product names one. */
export function placedNear(venueRegion: DoLocationHint | null | undefined): {
  locationHint?: DoLocationHint;
} {
  return venueRegion ? { locationHint: venueRegion } : {};
}
