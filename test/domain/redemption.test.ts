import { describe, it } from "vitest";
import {
  decideAnnulment,
  decideRedemption,
  type EntitlementState,
  type RedemptionRecord,
} from "../../src/domain/redemption";

// Pins the ticket object's pure scan rules: decideRedemption (may this token spend one use of this function
// now?) and decideAnnulment (may this scan be given back, by whom, until when?). The HTTP and object tests
// exercise them end to end; these pin every branch and boundary on facts alone.

const NOW_MS = Date.parse("2026-11-21T10:00:00.000Z");
/** A token `exp` (Unix seconds) comfortably in the future. */
const FRESH_EXP_SECONDS = NOW_MS / 1000 + 60;

const bus = (remaining: number, total = 10): EntitlementState => ({
  function: "bus",
  total_uses: total,
  remaining_uses: remaining,
});
const entry: EntitlementState = { function: "entry", total_uses: 1, remaining_uses: 1 };

type RedemptionInput = Parameters<typeof decideRedemption>[0];
const scan = (overrides: Partial<RedemptionInput> = {}) =>
  decideRedemption({
    entitlements: [entry, bus(3)],
    fn: "bus",
    jtiSpent: false,
    tokenExpiresAtSeconds: FRESH_EXP_SECONDS,
    nowMs: NOW_MS,
    ...overrides,
  });

describe("decideRedemption", () => {
  it("accepts a fresh token for a function with uses left, answering that function's entitlement", ({
    expect,
  }) => {
    expect(scan()).toEqual({ ok: true, entitlement: bus(3) });
    expect(scan({ fn: "entry" })).toEqual({ ok: true, entitlement: entry });
  });

  it("accepts the last use and refuses once none is left (or the count is below zero)", ({ expect }) => {
    expect(scan({ entitlements: [bus(1)] })).toEqual({ ok: true, entitlement: bus(1) });
    expect(scan({ entitlements: [bus(0)] })).toEqual({ ok: false, code: "exhausted" });
    expect(scan({ entitlements: [bus(-1)] })).toEqual({ ok: false, code: "exhausted" });
  });

  it("refuses a function the ticket does not have, matched exactly (no case folding)", ({ expect }) => {
    expect(scan({ fn: "ferry" })).toEqual({ ok: false, code: "no_entitlement" });
    expect(scan({ fn: "Bus" })).toEqual({ ok: false, code: "no_entitlement" });
    expect(scan({ fn: "" })).toEqual({ ok: false, code: "no_entitlement" });
    expect(scan({ entitlements: [] })).toEqual({ ok: false, code: "no_entitlement" });
  });

  it("judges only the scanned function's uses: another one used up does not matter", ({ expect }) => {
    const usedUpEntry = { ...entry, remaining_uses: 0 };
    expect(scan({ entitlements: [usedUpEntry, bus(2)] })).toEqual({ ok: true, entitlement: bus(2) });
    expect(scan({ entitlements: [usedUpEntry, bus(2)], fn: "entry" })).toEqual({
      ok: false,
      code: "exhausted",
    });
  });

  it("refuses a spent jti as token_replayed", ({ expect }) => {
    expect(scan({ jtiSpent: true })).toEqual({ ok: false, code: "token_replayed" });
  });

  it("expires the token at exactly exp: exp is in seconds, now in ms, and the comparison is exp*1000 <= now", ({
    expect,
  }) => {
    const exp = NOW_MS / 1000;
    expect(scan({ tokenExpiresAtSeconds: exp, nowMs: exp * 1000 - 1 })).toEqual({
      ok: true,
      entitlement: bus(3),
    });
    expect(scan({ tokenExpiresAtSeconds: exp, nowMs: exp * 1000 })).toEqual({
      ok: false,
      code: "token_expired",
    });
    expect(scan({ tokenExpiresAtSeconds: exp, nowMs: exp * 1000 + 1 })).toEqual({
      ok: false,
      code: "token_expired",
    });
  });

  it("does not read exp as milliseconds: an exp in seconds is long past when compared to now in ms", ({
    expect,
  }) => {
    // If the rule compared exp (seconds) to now (ms) directly, a token valid for another minute would
    // read as expired decades ago; and an exp mistakenly given in ms would never expire.
    expect(scan({ tokenExpiresAtSeconds: NOW_MS / 1000 + 1 })).toMatchObject({ ok: true });
    expect(scan({ tokenExpiresAtSeconds: NOW_MS / 1000 - 1 })).toEqual({ ok: false, code: "token_expired" });
  });

  describe("when several refusals apply, the order is expired, replayed, no_entitlement, exhausted", () => {
    // judgeScan's comment: the order is the contract's, and a spent token is refused as replayed before
    // anything about the entitlement is revealed (a replayed token must not learn whether the ticket has the
    // function or uses left). Expiry comes first of all; redemption.ts does not say why, but the ticket
    // object forgets spent jtis shortly after exp (refuseDeduction in ledger.ts states the same reasoning),
    // so past exp "replayed" could not be answered reliably and "expired" is the only stable answer.
    const expired = NOW_MS / 1000;

    it("an expired token is token_expired, even when also spent, unknown or exhausted", ({ expect }) => {
      expect(scan({ tokenExpiresAtSeconds: expired, jtiSpent: true })).toEqual({
        ok: false,
        code: "token_expired",
      });
      expect(scan({ tokenExpiresAtSeconds: expired, jtiSpent: true, fn: "ferry" })).toEqual({
        ok: false,
        code: "token_expired",
      });
      expect(scan({ tokenExpiresAtSeconds: expired, entitlements: [bus(0)] })).toEqual({
        ok: false,
        code: "token_expired",
      });
    });

    it("a spent jti is token_replayed before the function is looked at", ({ expect }) => {
      expect(scan({ jtiSpent: true, fn: "ferry" })).toEqual({ ok: false, code: "token_replayed" });
      expect(scan({ jtiSpent: true, entitlements: [bus(0)] })).toEqual({
        ok: false,
        code: "token_replayed",
      });
      expect(scan({ jtiSpent: true, entitlements: [] })).toEqual({ ok: false, code: "token_replayed" });
    });
  });
});

const SCANNED_AT_MS = NOW_MS;
const WINDOW_SECONDS = 120;
const WINDOW_MS = WINDOW_SECONDS * 1000;

const scanned = (overrides: Partial<RedemptionRecord> = {}): RedemptionRecord => ({
  fn: "bus",
  deviceId: "dev_gate_1",
  scannedAtMs: SCANNED_AT_MS,
  annulledAtMs: null,
  ...overrides,
});

type AnnulmentInput = Parameters<typeof decideAnnulment>[0];
const annul = (overrides: Partial<AnnulmentInput> = {}) =>
  decideAnnulment({
    redemption: scanned(),
    deviceId: "dev_gate_1",
    canOverride: false,
    hasReason: false,
    windowSeconds: WINDOW_SECONDS,
    nowMs: SCANNED_AT_MS + 1_000,
    ...overrides,
  });

describe("decideAnnulment", () => {
  it("lets the device that made the scan annul it within the window, without a reason", ({ expect }) => {
    expect(annul()).toEqual({ ok: true });
    expect(annul({ nowMs: SCANNED_AT_MS })).toEqual({ ok: true });
  });

  it("counts the window inclusively: allowed at exactly windowSeconds, refused 1 ms later", ({ expect }) => {
    expect(annul({ nowMs: SCANNED_AT_MS + WINDOW_MS - 1 })).toEqual({ ok: true });
    expect(annul({ nowMs: SCANNED_AT_MS + WINDOW_MS })).toEqual({ ok: true });
    expect(annul({ nowMs: SCANNED_AT_MS + WINDOW_MS + 1 })).toEqual({
      ok: false,
      code: "annul_not_allowed",
    });
  });

  it("reads windowSeconds as seconds", ({ expect }) => {
    expect(annul({ windowSeconds: 1, nowMs: SCANNED_AT_MS + 1_000 })).toEqual({ ok: true });
    expect(annul({ windowSeconds: 1, nowMs: SCANNED_AT_MS + 1_001 })).toEqual({
      ok: false,
      code: "annul_not_allowed",
    });
    expect(annul({ windowSeconds: 0, nowMs: SCANNED_AT_MS })).toEqual({ ok: true });
    expect(annul({ windowSeconds: 0, nowMs: SCANNED_AT_MS + 1 })).toEqual({
      ok: false,
      code: "annul_not_allowed",
    });
  });

  it("refuses another device, even within the window", ({ expect }) => {
    expect(annul({ deviceId: "dev_gate_2" })).toEqual({ ok: false, code: "annul_not_allowed" });
    expect(annul({ deviceId: "dev_gate_2", hasReason: true })).toEqual({
      ok: false,
      code: "annul_not_allowed",
    });
  });

  it("lets an overrider annul from any device at any time, but only with a reason", ({ expect }) => {
    const late = SCANNED_AT_MS + WINDOW_MS + 1;
    for (const [deviceId, nowMs] of [
      ["dev_gate_2", SCANNED_AT_MS + 1_000],
      ["dev_gate_2", late],
      ["dev_gate_1", late],
      ["dev_gate_1", SCANNED_AT_MS + 365 * 86_400_000],
    ] as const) {
      expect(annul({ deviceId, nowMs, canOverride: true, hasReason: true }), `${deviceId}@${nowMs}`).toEqual({
        ok: true,
      });
      expect(annul({ deviceId, nowMs, canOverride: true, hasReason: false }), `${deviceId}@${nowMs}`).toEqual(
        { ok: false, code: "reason_required" },
      );
    }
  });

  it("does not ask an overrider for a reason on their own device's scan within the window", ({ expect }) => {
    expect(annul({ canOverride: true, hasReason: false })).toEqual({ ok: true });
    expect(annul({ canOverride: true, hasReason: false, nowMs: SCANNED_AT_MS + WINDOW_MS })).toEqual({
      ok: true,
    });
  });

  it("a reason alone grants nothing: without override, past the window is still refused", ({ expect }) => {
    expect(annul({ hasReason: true, nowMs: SCANNED_AT_MS + WINDOW_MS + 1 })).toEqual({
      ok: false,
      code: "annul_not_allowed",
    });
  });

  it("refuses a scan that was already annulled, whoever asks and with whatever rights", ({ expect }) => {
    const annulled = scanned({ annulledAtMs: SCANNED_AT_MS + 500 });
    expect(annul({ redemption: annulled })).toEqual({ ok: false, code: "already_annulled" });
    expect(annul({ redemption: annulled, canOverride: true, hasReason: true })).toEqual({
      ok: false,
      code: "already_annulled",
    });
    // Checked before permission: a device that could not annul it is still told it is already annulled.
    expect(annul({ redemption: annulled, deviceId: "dev_gate_2" })).toEqual({
      ok: false,
      code: "already_annulled",
    });
    // 0 is a time, not "not annulled".
    expect(annul({ redemption: scanned({ annulledAtMs: 0 }) })).toEqual({
      ok: false,
      code: "already_annulled",
    });
  });

  it("answers not_found for a missing redemption, before anything else", ({ expect }) => {
    expect(annul({ redemption: undefined })).toEqual({ ok: false, code: "not_found" });
    expect(annul({ redemption: undefined, canOverride: true, hasReason: true })).toEqual({
      ok: false,
      code: "not_found",
    });
  });
});
