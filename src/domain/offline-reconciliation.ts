// What the ticket object makes of a scan a gate decided offline, uploaded later (in any order, perhaps
// more than once). Pure, so the property tests can run it over every schedule they generate.

/**
 * How long a ticket object remembers a reconciled offline scan id, so an upload retried or duplicated
 * within it is answered `duplicate`; the upload route refuses scans too old to be told apart after it.
 */
export const OFFLINE_SCAN_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

export type OfflineGateDecision = "accepted" | "refused";

export type ReconciliationOutcome =
  /** The ticket still had the use: it is spent now, dated when the gate let the holder in. */
  | { outcome: "applied" }
  /** The ticket had no use left (or never had this function): nothing goes below zero, the over-spend is kept. */
  | { outcome: "conflict"; reason: "exhausted" | "no_entitlement" }
  /** The gate refused the holder: only recorded. */
  | { outcome: "recorded" }
  /** This scan id was reconciled before: its first outcome stands. */
  | { outcome: "duplicate" };

export function reconcileOfflineScan(facts: {
  alreadyReconciled: boolean;
  decision: OfflineGateDecision;
  hasEntitlement: boolean;
  remainingUses: number;
}): ReconciliationOutcome {
  if (facts.alreadyReconciled) return { outcome: "duplicate" };
  if (facts.decision === "refused") return { outcome: "recorded" };
  if (!facts.hasEntitlement) return { outcome: "conflict", reason: "no_entitlement" };
  if (facts.remainingUses <= 0) return { outcome: "conflict", reason: "exhausted" };
  return { outcome: "applied" };
}

/**
 * Whether an accepted offline scan broke the budget a well-behaved gate keeps (decideOfflineScan): it was
 * made while the same device already had `accepts_per_ticket_function` accepts of this ticket+function it
 * could not have seen reconciled, or with a token that was not good at the time the gate gives. Flagged
 * for the report; the scan is still reconciled like any other (the holder was let in).
 */
export function isOverBudget(facts: {
  /** The device's earlier offline accepts of this ticket+function not yet reconciled when this one was made. */
  inFlightBefore: number;
  acceptsPerTicketFunction: number;
  tokenGoodAtScan: boolean;
}): boolean {
  return !facts.tokenGoodAtScan || facts.inFlightBefore >= facts.acceptsPerTicketFunction;
}

/** The id of what an offline scan leaves in D1 (a flag, a refusal's audit entry): one per ticket, device and scan. */
export function offlineFlagId(ticketCode: string | null, deviceId: string, scanId: string): string {
  return `off_${ticketCode ?? "-"}_${deviceId}_${scanId}`;
}
