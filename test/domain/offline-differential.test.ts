import fc from "fast-check";
import { describe, it } from "vitest";
import {
  decideOfflineScan,
  type OfflineBudget,
  type OfflineDecision,
  QR_CLOCK_TOLERANCE_MS,
  type TicketFunctionKnowledge,
} from "../../src/domain/offline-rule";
import {
  decideRedemption,
  type EntitlementState,
  type RedemptionRejection,
} from "../../src/domain/redemption";

// The gate's offline rule against the ticket object's online rule, on the same facts: the ticket's state as
// a gate with a fresh kit sees it. Offline may only ever be stricter, and only in the ways listed in
// STRICTER_BY_DESIGN; everywhere else the two must give the same answer, code for code. Seen to catch,
// each within 300 cases: the kit's age or the token's nbf compared with >= instead of > (off by one on the
// boundary), an allowance of 0 let through, and offlineAllowance ignoring `knownRemaining`.

const NUM_CASES = 10_000;
/** Fixed, so a failure reproduces and the coverage counts below are stable. */
const SEED = 20_240_916;

const TICKET_FUNCTIONS = ["entry", "vip", "merch", "afterparty"] as const;
/** A function no generated ticket has, to reach `no_entitlement`. */
const FOREIGN_FUNCTION = "parking";
const NOW_SECONDS = 1_900_000_000;

/** The refusals only a gate offline makes, each with the fact that explains it. */
const STRICTER_BY_DESIGN = [
  "offline_too_long", // the kit is older than max_offline_seconds: checked before anything else
  "not_yet_valid", // nbf beyond the gate's clock plus the tolerance (the online rule leaves nbf to jose)
  "needs_online", // a token without its `fns` claim cannot be judged offline
  "offline_limit", // the ticket object would accept, but the gate's allowance for it is spent
] as const;
type Strictness = (typeof STRICTER_BY_DESIGN)[number];

const ONLINE_REFUSALS: readonly RedemptionRejection[] = [
  "token_expired",
  "token_replayed",
  "no_entitlement",
  "exhausted",
];

interface ScanCase {
  entitlements: EntitlementState[];
  fn: string;
  nowMs: number;
  expiresAtSeconds: number;
  notBeforeSeconds: number;
  jtiSpent: boolean;
  tokenNamesFunctions: boolean;
  budget: OfflineBudget;
  outstanding: number;
  /** How long before `nowMs` the gate last heard from the server. */
  contactAgeMs: number;
}

/** Offsets that sit on each boundary, mixed with a spread around it. */
const around = (boundaries: number[], min: number, max: number) =>
  fc.oneof(fc.constantFrom(...boundaries), fc.integer({ min, max }));

const entitlementsArbitrary = fc
  .uniqueArray(
    fc.record({
      function: fc.constantFrom(...TICKET_FUNCTIONS),
      total_uses: fc.integer({ min: 0, max: 5 }),
      spent: fc.integer({ min: 0, max: 5 }),
    }),
    { minLength: 1, maxLength: 4, selector: (e) => e.function },
  )
  .map((list) =>
    list.map(
      (e): EntitlementState => ({
        function: e.function,
        total_uses: e.total_uses,
        remaining_uses: Math.max(0, e.total_uses - e.spent),
      }),
    ),
  );

const caseArbitrary: fc.Arbitrary<ScanCase> = fc
  .record({
    entitlements: entitlementsArbitrary,
    budget: fc.record({
      accepts_per_ticket_function: fc.integer({ min: 1, max: 3 }),
      max_offline_seconds: fc.oneof(fc.constantFrom(60, 1_800), fc.integer({ min: 1, max: 3_600 })),
    }),
  })
  .chain(({ entitlements, budget }) => {
    const maxOfflineMs = budget.max_offline_seconds * 1000;
    return fc.record({
      entitlements: fc.constant(entitlements),
      budget: fc.constant(budget),
      fn: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...entitlements.map((e) => e.function)) },
        { weight: 1, arbitrary: fc.constant(FOREIGN_FUNCTION) },
      ),
      // Whole seconds (ms = 0) put `exp` exactly on the clock; 999 is the last millisecond before the next.
      nowMs: around([0, 1, 999], 0, 999).map((ms) => NOW_SECONDS * 1000 + ms),
      expiresAtSeconds: around([-5, -1, 0, 1, 5], -60, 60).map((s) => NOW_SECONDS + s),
      // The tolerance is 5 s: with ms in 0..999, nbf = now + 5 is still good and now + 6 is not.
      notBeforeSeconds: around([-5, 4, 5, 6], -60, 10).map((s) => NOW_SECONDS + s),
      jtiSpent: fc.boolean(),
      tokenNamesFunctions: fc.boolean(),
      outstanding: fc.integer({ min: 0, max: 3 }),
      contactAgeMs: around([0, maxOfflineMs - 1, maxOfflineMs, maxOfflineMs + 1], 0, 2 * maxOfflineMs),
    });
  });

/** What a gate with a kit fetched from this very state knows of the ticket+function. */
function freshKitKnowledge(c: ScanCase): TicketFunctionKnowledge {
  const entitlement = c.entitlements.find((e) => e.function === c.fn);
  if (!entitlement) return { blocked: false, knownRemaining: undefined, outstanding: c.outstanding };
  const blocked = entitlement.remaining_uses === 0;
  // The kit's `scarce` list: fewer uses left than the budget, and not already blocked.
  const scarce = !blocked && entitlement.remaining_uses < c.budget.accepts_per_ticket_function;
  return {
    blocked,
    knownRemaining: scarce ? entitlement.remaining_uses : undefined,
    outstanding: c.outstanding,
  };
}

/**
 * Where offline must differ, worked out from the generated facts rather than from the rule's code: the
 * kit's age against the budget, the token's start against the clock, the claim's presence, and, only when
 * the ticket object accepts, whether this gate's own accepts in flight already reach min(budget, uses left).
 */
function expectedStrictness(c: ScanCase, onlineAccepts: boolean): Strictness | undefined {
  if (c.contactAgeMs > c.budget.max_offline_seconds * 1000) return "offline_too_long";
  if (c.notBeforeSeconds * 1000 - c.nowMs > QR_CLOCK_TOLERANCE_MS) return "not_yet_valid";
  if (!c.tokenNamesFunctions) return "needs_online";
  if (!onlineAccepts) return undefined;
  const remaining = c.entitlements.find((e) => e.function === c.fn)?.remaining_uses ?? 0;
  return c.outstanding >= Math.min(c.budget.accepts_per_ticket_function, remaining)
    ? "offline_limit"
    : undefined;
}

const label = (d: OfflineDecision | { ok: false; code: RedemptionRejection }) => (d.ok ? "accepted" : d.code);

describe("offline rule against the online rule", () => {
  it("decide ≥ 10 000 generated cases identically, except where offline is stricter by design", ({
    expect,
  }) => {
    let cases = 0;
    const differences = new Map<Strictness, number>(STRICTER_BY_DESIGN.map((s) => [s, 0]));
    const identical = new Map<string, number>();

    fc.assert(
      fc.property(caseArbitrary, (c) => {
        const online = decideRedemption({
          entitlements: c.entitlements,
          fn: c.fn,
          jtiSpent: c.jtiSpent,
          tokenExpiresAtSeconds: c.expiresAtSeconds,
          nowMs: c.nowMs,
        });
        const offline = decideOfflineScan({
          token: {
            ticketCode: "TICKET",
            jti: "jti-1",
            notBeforeSeconds: c.notBeforeSeconds,
            expiresAtSeconds: c.expiresAtSeconds,
            functions: c.tokenNamesFunctions ? c.entitlements.map((e) => e.function) : null,
          },
          fn: c.fn,
          // The same facts: a gate has seen the jti exactly when the ticket object has spent it.
          jtiSeen: c.jtiSpent,
          knowledge: freshKitKnowledge(c),
          budget: c.budget,
          lastContactMs: c.nowMs - c.contactAgeMs,
          nowMs: c.nowMs,
        });

        // Never more lenient: an offline accept is an accept online too.
        if (offline.ok) expect(online.ok).toBe(true);
        // A refusal the online rule knows carries the online rule's code.
        if (!offline.ok && !online.ok && (ONLINE_REFUSALS as readonly string[]).includes(offline.code)) {
          expect(offline.code).toBe(online.code);
        }

        const strictness = expectedStrictness(c, online.ok);
        if (strictness === undefined) {
          expect(label(offline)).toBe(label(online));
          identical.set(label(online), (identical.get(label(online)) ?? 0) + 1);
        } else {
          expect(offline).toEqual({ ok: false, code: strictness });
          differences.set(strictness, (differences.get(strictness) ?? 0) + 1);
        }
        cases += 1;
      }),
      { numRuns: NUM_CASES, seed: SEED },
    );

    expect(cases).toBeGreaterThanOrEqual(10_000);
    // Each by-design difference, and each online answer agreed on, really occurred: the generator reaches
    // every branch rather than passing on cases that never exercise one.
    for (const strictness of STRICTER_BY_DESIGN) expect(differences.get(strictness)).toBeGreaterThan(0);
    for (const answer of ["accepted", ...ONLINE_REFUSALS]) expect(identical.get(answer)).toBeGreaterThan(0);
    const identicalTotal = [...identical.values()].reduce((sum, n) => sum + n, 0);
    const differentTotal = [...differences.values()].reduce((sum, n) => sum + n, 0);
    expect(identicalTotal + differentTotal).toBe(cases);
  });
});
