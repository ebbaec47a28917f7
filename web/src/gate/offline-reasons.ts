import { reasonText } from "../lib/format";

// Refusals only a gate deciding alone makes, in the words staff read on the verdict and in the history.

const OFFLINE_REASONS: Record<string, string> = {
  offline_limit: "Already let in offline at this gate: needs the network to check again",
  offline_too_long: "Offline for too long: connect to the network to check tickets",
  needs_online: "This code can only be checked online",
  not_yet_valid: "Code not valid yet: check the time on the phone, or wait a moment",
  offline_queue_full: "Too many scans waiting to sync: connect to the network",
  no_offline_kit: "No offline kit on this device yet: needs the network",
};

/** Refusals a gate decides offline that mean "ask the server" rather than a verdict on the ticket. */
export const UNDECIDED_OFFLINE = new Set([
  "offline_limit",
  "offline_too_long",
  "needs_online",
  "not_yet_valid",
  "offline_queue_full",
  "no_offline_kit",
]);

export function gateReasonText(code: string): string {
  return OFFLINE_REASONS[code] ?? reasonText(code);
}
