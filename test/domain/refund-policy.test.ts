import { describe, it } from "vitest";
import {
  canApproveRefunds,
  decideRefundPolicy,
  type RefundPolicy,
  refundNeedsApproval,
} from "../../src/domain/refund-policy";
import { OPERATOR_ROLES, type OperatorRole } from "../../src/types/domain";

// Pins who may refund a POS deduction from a till, and when: never past the window (whatever the role),
// and above the approval limit only as supervisor or admin; the window is judged first.

const POLICY: RefundPolicy = { windowSeconds: 3_600, approvalCents: 5_000 };
const WINDOW_MS = POLICY.windowSeconds * 1000;
const MADE_AT = "2026-11-21T10:00:00.000Z";
const MADE_AT_MS = Date.parse(MADE_AT);

const decide = (
  facts: { ageMs?: number; amountCents?: number; roles?: readonly OperatorRole[] },
  policy = POLICY,
) =>
  decideRefundPolicy(policy, {
    deductionCreatedAt: MADE_AT,
    now: new Date(MADE_AT_MS + (facts.ageMs ?? 60_000)),
    amountCents: facts.amountCents ?? 100,
    roles: facts.roles ?? ["pos"],
  });

const APPROVERS: readonly OperatorRole[] = ["supervisor", "admin"];
const NON_APPROVERS: readonly OperatorRole[] = ["gate", "pos", "analyst"];

describe("canApproveRefunds", () => {
  it("is true for supervisor and admin, alone or with other roles, and false for every other role", ({
    expect,
  }) => {
    expect([...APPROVERS, ...NON_APPROVERS].sort()).toEqual([...OPERATOR_ROLES].sort());
    for (const role of APPROVERS) {
      expect(canApproveRefunds([role]), role).toBe(true);
      expect(canApproveRefunds(["pos", role]), `pos+${role}`).toBe(true);
    }
    for (const role of NON_APPROVERS) expect(canApproveRefunds([role]), role).toBe(false);
    expect(canApproveRefunds(NON_APPROVERS)).toBe(false);
    expect(canApproveRefunds([])).toBe(false);
  });
});

describe("decideRefundPolicy", () => {
  it("the window: open at exactly windowSeconds old, closed 1 ms later", ({ expect }) => {
    expect(decide({ ageMs: 0 })).toEqual({ ok: true });
    expect(decide({ ageMs: WINDOW_MS - 1 })).toEqual({ ok: true });
    expect(decide({ ageMs: WINDOW_MS })).toEqual({ ok: true });
    expect(decide({ ageMs: WINDOW_MS + 1 })).toEqual({ ok: false, code: "refund_window_closed" });
  });

  it("the window binds every role: supervisors and admins refund older deductions by adjustment", ({
    expect,
  }) => {
    for (const roles of [["pos"], ["supervisor"], ["admin"], ["pos", "supervisor", "admin"]] as const) {
      expect(decide({ ageMs: WINDOW_MS + 1, roles }), roles.join("+")).toEqual({
        ok: false,
        code: "refund_window_closed",
      });
    }
  });

  it("the window is in seconds", ({ expect }) => {
    const oneSecond = { ...POLICY, windowSeconds: 1 };
    expect(decide({ ageMs: 1_000 }, oneSecond)).toEqual({ ok: true });
    expect(decide({ ageMs: 1_001 }, oneSecond)).toEqual({ ok: false, code: "refund_window_closed" });
  });

  it("a deduction stamped slightly in the future (clock skew) is inside the window", ({ expect }) => {
    expect(decide({ ageMs: -1_000 })).toEqual({ ok: true });
  });

  it("approval: up to approvalCents anyone may refund, one cent more needs supervisor or admin", ({
    expect,
  }) => {
    for (const role of NON_APPROVERS) {
      expect(decide({ amountCents: 5_000, roles: [role] }), role).toEqual({ ok: true });
      expect(decide({ amountCents: 5_001, roles: [role] }), role).toEqual({
        ok: false,
        code: "approval_required",
      });
    }
    expect(decide({ amountCents: 5_001, roles: NON_APPROVERS })).toEqual({
      ok: false,
      code: "approval_required",
    });
    expect(decide({ amountCents: 5_001, roles: [] })).toEqual({ ok: false, code: "approval_required" });
    for (const role of APPROVERS) {
      expect(decide({ amountCents: 5_001, roles: [role] }), role).toEqual({ ok: true });
      expect(decide({ amountCents: 10_000_000, roles: ["pos", role] }), role).toEqual({ ok: true });
    }
  });

  it("a zero approval limit needs approval for any refund of at least a cent", ({ expect }) => {
    const strict = { ...POLICY, approvalCents: 0 };
    expect(decide({ amountCents: 1 }, strict)).toEqual({ ok: false, code: "approval_required" });
    expect(decide({ amountCents: 1, roles: ["supervisor"] }, strict)).toEqual({ ok: true });
  });

  it("judges the window before approval: a large late refund is refund_window_closed", ({ expect }) => {
    expect(decide({ ageMs: WINDOW_MS + 1, amountCents: 5_001 })).toEqual({
      ok: false,
      code: "refund_window_closed",
    });
    expect(decide({ ageMs: WINDOW_MS, amountCents: 5_001 })).toEqual({
      ok: false,
      code: "approval_required",
    });
  });
});

describe("refundNeedsApproval", () => {
  it("counts the deduction's earlier refunds with this one; no limit for a caller who approves", ({
    expect,
  }) => {
    expect(refundNeedsApproval(5_000, 0, 5_000)).toBe(false);
    expect(refundNeedsApproval(5_000, 0, 5_001)).toBe(true);
    expect(refundNeedsApproval(5_000, 4_000, 1_000)).toBe(false);
    expect(refundNeedsApproval(5_000, 4_000, 1_001)).toBe(true);
    expect(refundNeedsApproval(null, 1_000_000, 1_000_000)).toBe(false);
  });
});
