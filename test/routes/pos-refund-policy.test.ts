import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, it, vi } from "vitest";
import { buildApp } from "../../src/app";
import { decideRefundPolicy, type RefundPolicy } from "../../src/domain/refund-policy";
import type { Env } from "../../src/env";
import type { OperatorRole } from "../../src/types/domain";
import { operatorToken, seedProduct } from "../support/fixtures";
import { callJson } from "../support/http";
import { openSession, registeredDevice } from "../support/staff";
import {
  allTransactions,
  deduct,
  fundedWallet,
  type LedgerRowBody,
  type PosActor,
  posSessionFor,
  posTill,
  refund,
  storedWallet,
  type Till,
  walletQr,
} from "../support/wallet";

// The contract's refund policy: an open POS session of the caller at the deduction's event (supervisors
// and admins: any POS session), a window (REFUND_WINDOW_SECONDS, 409 refund_window_closed) and approval
// above REFUND_APPROVAL_CENTS (403 approval_required unless supervisor or admin).

const APPROVAL_CENTS = Number(env.REFUND_APPROVAL_CENTS ?? 5_000);

const uniqueEvent = () => `evt-${crypto.randomUUID().slice(0, 8)}`;

/** A deduction of `amountCents` at a till of `till`'s event (a fresh till and event by default). */
async function sale(amountCents: number, till?: Till) {
  const wallet = await fundedWallet(Math.max(amountCents, 500));
  const at = till ?? (await posTill());
  const paid = await deduct(at, await walletQr(wallet.token), amountCents);
  if (paid.status !== 201) throw new Error(`deduction failed: ${paid.status} ${paid.body.code}`);
  // Flushed to the ledger now, so the refunds below do not wait for the wallet's flush window.
  await storedWallet(wallet.userId);
  return { userId: wallet.userId, till: at, id: paid.body.transaction_id };
}

/** An operator with `roles` for `eventIds`, refunding from a POS session at the first of them. */
async function refunder(
  roles: OperatorRole[],
  eventIds: string[],
): Promise<PosActor & { operatorId: string }> {
  const operator = await operatorToken(roles, eventIds);
  const eventId = eventIds[0] ?? uniqueEvent();
  return { ...(await posSessionFor(operator.token, eventId)), operatorId: operator.operatorId };
}

/** The refunds D1 holds for a wallet and its balance, after its object flushed. */
async function refundsOf(userId: string) {
  const stored = await storedWallet(userId);
  return {
    balanceCents: stored.balanceCents,
    ledgerSumCents: stored.ledgerSumCents,
    refunds: stored.ledger.filter((row) => row.type === "REFUND"),
  };
}

describe("POST /pos/deductions/{id}/refund: the caller's POS session", () => {
  it("403 session_invalid without a session_id, and nothing is refunded", async ({ expect }) => {
    const { userId, till, id } = await sale(700);
    const answer = await callJson<LedgerRowBody>("POST", `/pos/deductions/${id}/refund`, {
      token: till.token,
      idempotencyKey: crypto.randomUUID(),
      body: { reason: "no session", amount_cents: 100 },
    });
    expect(answer).toMatchObject({ status: 403, body: { code: "session_invalid" } });
    expect((await refundsOf(userId)).refunds).toHaveLength(0);
  });

  it("403 session_invalid from a closed session, someone else's, or a gate session", async ({ expect }) => {
    const { userId, till, id } = await sale(700);
    const closed = await callJson("DELETE", `/validators/sessions/${till.sessionId}`, { token: till.token });
    expect(closed.status).toBe(200);
    expect(await refund(till, id, { amount_cents: 100 })).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });

    const colleague = await refunder(["pos"], [till.eventId]);
    expect(await refund({ token: till.token, sessionId: colleague.sessionId }, id)).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });

    const both = await operatorToken(["pos", "gate"], [till.eventId]);
    const gateDevice = await registeredDevice({ kind: "gate", location_id: "loc-refunds" });
    const gateSession = await openSession(both.token, { device_id: gateDevice });
    expect(gateSession.status).toBe(201);
    expect(await refund({ token: both.token, sessionId: gateSession.body.session_id }, id)).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });
    expect((await refundsOf(userId)).refunds).toHaveLength(0);
  });

  it("403 session_invalid from the caller's own POS session at another event, 201 from the sale's event", async ({
    expect,
  }) => {
    const [saleEvent, otherEvent] = [uniqueEvent(), uniqueEvent()];
    const pos = await operatorToken(["pos"], [saleEvent, otherEvent]);
    const atSale = await posSessionFor(pos.token, saleEvent);
    const atOther = await posSessionFor(pos.token, otherEvent);
    const { userId, id } = await sale(700, {
      ...atSale,
      operatorId: pos.operatorId,
      deviceId: "",
      eventId: saleEvent,
    });

    expect(await refund(atOther, id, { amount_cents: 100 })).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });
    expect((await refundsOf(userId)).refunds).toHaveLength(0);
    expect(await refund(atSale, id, { amount_cents: 100 })).toMatchObject({
      status: 201,
      body: { reversal_of: id, amount_cents: 100, event_id: saleEvent },
    });
  });

  it("an order's credits are no till sale: a supervisor's or an admin's POS refund of them is 404", async ({
    expect,
  }) => {
    const product = await seedProduct({ price_cents: 800, sellable: 5 });
    const { userId, token } = await fundedWallet(2_000);
    const order = await callJson<{ status: string }>("POST", "/orders", {
      token,
      idempotencyKey: crypto.randomUUID(),
      body: { items: [{ product_id: product.id, quantity: 1 }], credits_cents: 800 },
    });
    expect(order.body.status).toBe("PAID");
    const paid = (await allTransactions(token)).find((row) => row.type === "DEDUCT");
    expect(paid).toMatchObject({ amount_cents: 800, event_id: null });
    for (const roles of [["pos", "supervisor"], ["admin"]] as OperatorRole[][]) {
      const approver = await refunder(roles, [uniqueEvent()]);
      expect(await refund(approver, paid?.id ?? "")).toMatchObject({
        status: 404,
        body: { code: "not_found" },
      });
    }
    expect(await refundsOf(userId)).toMatchObject({ balanceCents: 1_200, refunds: [] });
  });

  it("a supervisor or an admin may refund from a POS session of another event (201)", async ({ expect }) => {
    const { userId, id } = await sale(900);
    const supervisor = await refunder(["pos", "supervisor"], [uniqueEvent()]);
    const admin = await refunder(["admin"], [uniqueEvent()]);
    expect(await refund(supervisor, id, { amount_cents: 300 })).toMatchObject({
      status: 201,
      body: { reversal_of: id, amount_cents: 300 },
    });
    expect(await refund(admin, id, { amount_cents: 300 })).toMatchObject({
      status: 201,
      body: { reversal_of: id, amount_cents: 300 },
    });
    // Approval does not waive the session: a supervisor still needs an open one of their own.
    expect(await refund({ token: supervisor.token, sessionId: "ses_doesnotexist" }, id)).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });
    expect(await refundsOf(userId)).toMatchObject({ balanceCents: 600, ledgerSumCents: 600 });
  });
});

describe("POST /pos/deductions/{id}/refund: approval above REFUND_APPROVAL_CENTS", () => {
  it("runs with the limit the deployment is configured with", ({ expect }) => {
    expect(APPROVAL_CENTS).toBe(5_000);
  });

  it("a pos operator is 403 approval_required above the limit, with or without amount_cents; nothing moves", async ({
    expect,
  }) => {
    const { userId, till, id } = await sale(6_000);
    const before = await refundsOf(userId);
    expect(await refund(till, id, { amount_cents: APPROVAL_CENTS + 1 })).toMatchObject({
      status: 403,
      body: { code: "approval_required" },
    });
    // Without an amount the whole deduction counts.
    expect(await refund(till, id)).toMatchObject({ status: 403, body: { code: "approval_required" } });
    expect(await refundsOf(userId)).toEqual(before);
    expect(before).toMatchObject({ balanceCents: 0, refunds: [] });

    // Exactly the limit needs no one's approval.
    expect(await refund(till, id, { amount_cents: APPROVAL_CENTS })).toMatchObject({
      status: 201,
      body: { amount_cents: APPROVAL_CENTS, reversal_of: id },
    });
    // What is left is small, but the deduction's refunds together would pass the limit: with or without
    // an amount, the rest needs approval (earlier refunds count: see the next test).
    expect(await refund(till, id)).toMatchObject({ status: 403, body: { code: "approval_required" } });
    expect(await refund(till, id, { amount_cents: 1_000 })).toMatchObject({
      status: 403,
      body: { code: "approval_required" },
    });
    const approver = await refunder(["pos", "supervisor"], [till.eventId]);
    expect(await refund(approver, id, { amount_cents: 1_000 })).toMatchObject({
      status: 201,
      body: { amount_cents: 1_000 },
    });
    expect(await refundsOf(userId)).toMatchObject({ balanceCents: 6_000, ledgerSumCents: 6_000 });
  });

  it("the limit counts a deduction's earlier refunds: split refunds, in turn or racing, never pass it unapproved", async ({
    expect,
  }) => {
    const { userId, till, id } = await sale(APPROVAL_CENTS * 2);
    expect(await refund(till, id, { amount_cents: APPROVAL_CENTS })).toMatchObject({ status: 201 });
    expect(await refund(till, id, { amount_cents: 1 })).toMatchObject({
      status: 403,
      body: { code: "approval_required" },
    });
    // Two refunds under different keys at once, each alone within the limit, together above it.
    const other = await sale(APPROVAL_CENTS * 2, till);
    const half = Math.ceil(APPROVAL_CENTS / 2) + 1;
    const raced = await Promise.all([1, 2].map(() => refund(till, other.id, { amount_cents: half })));
    expect(raced.map((answer) => answer.status).sort()).toEqual([201, 403]);
    // A supervisor approves what is left.
    const approver = await refunder(["pos", "supervisor"], [till.eventId]);
    expect(await refund(approver, id)).toMatchObject({ status: 201, body: { amount_cents: APPROVAL_CENTS } });
    expect((await refundsOf(userId)).refunds.map((row) => row.amountCents).sort((a, b) => a - b)).toEqual([
      APPROVAL_CENTS,
      APPROVAL_CENTS,
    ]);
    expect((await refundsOf(other.userId)).refunds.map((row) => row.amountCents)).toEqual([half]);
  });

  it.each([
    ["a supervisor", ["pos", "supervisor"] as OperatorRole[]],
    ["an admin", ["admin"] as OperatorRole[]],
  ])("%s refunds the whole of a large deduction (201)", async (_name, roles) => {
    const { expect } = await import("vitest");
    const { userId, till, id } = await sale(6_000);
    const approver = await refunder(roles, [till.eventId]);
    expect(await refund(approver, id)).toMatchObject({
      status: 201,
      body: { amount_cents: 6_000, reversal_of: id },
    });
    expect(await refundsOf(userId)).toMatchObject({ balanceCents: 6_000, ledgerSumCents: 6_000 });
  });

  it("a stored refusal is replayed on a retry with the same key, even once the operator may approve", async ({
    expect,
  }) => {
    const { userId, till, id } = await sale(6_000);
    const key = crypto.randomUUID();
    const first = await refund(till, id, {}, key);
    expect(first).toMatchObject({ status: 403, body: { code: "approval_required" } });
    expect(first.headers.get("idempotent-replayed")).toBeNull();

    const retry = await refund(till, id, {}, key);
    expect(retry).toMatchObject({ status: 403, body: first.body });
    expect(retry.headers.get("idempotent-replayed")).toBe("true");

    const admin = await operatorToken(["admin"]);
    const promoted = await callJson("PATCH", `/admin/operators/${till.operatorId}`, {
      token: admin.token,
      body: { roles: ["pos", "supervisor"] },
    });
    expect(promoted.status).toBe(200);
    // A stored business failure stays what it was: a new attempt needs a new key.
    const again = await refund(till, id, {}, key);
    expect(again).toMatchObject({ status: 403, body: { code: "approval_required" } });
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect((await refundsOf(userId)).refunds).toHaveLength(0);
    expect(await refund(till, id)).toMatchObject({ status: 201, body: { amount_cents: 6_000 } });
  });

  it("10 parallel refunds by a supervisor, each with its own key, never exceed the original", async ({
    expect,
  }) => {
    const { userId, till, id } = await sale(12_000);
    const supervisor = await refunder(["pos", "supervisor"], [till.eventId]);
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => refund(supervisor, id, { amount_cents: APPROVAL_CENTS + 1 })),
    );
    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(2);
    const refused = answers.filter((answer) => answer.status !== 201);
    expect(refused).toHaveLength(8);
    for (const answer of refused) {
      expect(answer).toMatchObject({ status: 409, body: { code: "refund_exceeds_original" } });
      expect(answer.body.refundable_cents).toBeLessThan(APPROVAL_CENTS + 1);
    }
    const stored = await refundsOf(userId);
    expect(stored.refunds.reduce((sum, row) => sum + row.amountCents, 0)).toBe(2 * (APPROVAL_CENTS + 1));
    expect(stored).toMatchObject({
      balanceCents: 2 * (APPROVAL_CENTS + 1),
      ledgerSumCents: 2 * (APPROVAL_CENTS + 1),
    });
  });
});

describe("POST /pos/deductions/{id}/refund: the window", () => {
  // The deduction's time is its ledger row's created_at, and the ledger is append-only (a trigger refuses
  // every UPDATE), so a deduction is made old by moving the clock rather than the row: a deployment with
  // the shortest window the configuration accepts (60 s), and `Date` set to just inside and just past it.
  const WINDOW_SECONDS = 60;
  const app = buildApp();
  const shortWindow = { ...env, REFUND_WINDOW_SECONDS: String(WINDOW_SECONDS) } as Env;

  async function refundAt(
    deployment: Env,
    actor: PosActor,
    id: string,
    body: { amount_cents?: number },
  ): Promise<{ status: number; body: LedgerRowBody }> {
    const ctx = createExecutionContext();
    const response = await app.fetch(
      new Request(`https://passes.test/pos/deductions/${id}/refund`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${actor.token}`,
          "content-type": "application/json",
          "idempotency-key": crypto.randomUUID(),
        },
        body: JSON.stringify({ reason: "window test", session_id: actor.sessionId, ...body }),
      }),
      deployment,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    return { status: response.status, body: (await response.json()) as LedgerRowBody };
  }

  afterEach(() => {
    vi.useRealTimers();
  });

  it("a deduction exactly the window old is refundable; 1 ms older is 409 refund_window_closed for anyone", async ({
    expect,
  }) => {
    const { userId, till, id } = await sale(900);
    const admin = await refunder(["admin"], [till.eventId]);
    const row = (await storedWallet(userId)).ledger.find((entry) => entry.id === id);
    if (!row) throw new Error("the deduction never reached the ledger");
    const madeAtMs = Date.parse(row.createdAt);

    vi.setSystemTime(madeAtMs + WINDOW_SECONDS * 1000);
    expect(await refundAt(shortWindow, till, id, { amount_cents: 100 })).toMatchObject({
      status: 201,
      body: { reversal_of: id, amount_cents: 100 },
    });

    vi.setSystemTime(madeAtMs + WINDOW_SECONDS * 1000 + 1);
    for (const actor of [till, admin]) {
      expect(await refundAt(shortWindow, actor, id, { amount_cents: 100 })).toMatchObject({
        status: 409,
        body: { code: "refund_window_closed" },
      });
    }
    // The window is judged before approval: a large refund past it is closed, not approval_required.
    expect(await refundAt(shortWindow, till, id, {})).toMatchObject({
      status: 409,
      body: { code: "refund_window_closed" },
    });
    // The same moment under the default window (a day) is well inside it.
    expect(await refundAt(env as Env, till, id, { amount_cents: 100 })).toMatchObject({
      status: 201,
      body: { amount_cents: 100 },
    });
    vi.useRealTimers();

    const stored = await refundsOf(userId);
    expect(stored.refunds.map((entry) => entry.amountCents)).toEqual([100, 100]);
    expect(stored).toMatchObject({ balanceCents: 200, ledgerSumCents: 200 });
  });
});

describe("decideRefundPolicy", () => {
  const policy: RefundPolicy = { windowSeconds: 86_400, approvalCents: 5_000 };
  const madeAt = "2026-11-21T10:00:00.000Z";
  const at = (ms: number) => new Date(Date.parse(madeAt) + ms);
  const facts = (overrides: { ageMs?: number; amountCents?: number; roles?: OperatorRole[] }) => ({
    deductionCreatedAt: madeAt,
    now: at(overrides.ageMs ?? 0),
    amountCents: overrides.amountCents ?? 100,
    roles: overrides.roles ?? (["pos"] as OperatorRole[]),
  });

  it("allows a deduction exactly the window old and closes it 1 ms later, for every role", ({ expect }) => {
    const window = policy.windowSeconds * 1000;
    expect(decideRefundPolicy(policy, facts({ ageMs: window }))).toEqual({ ok: true });
    for (const roles of [["pos"], ["pos", "supervisor"], ["admin"]] as OperatorRole[][]) {
      expect(decideRefundPolicy(policy, facts({ ageMs: window + 1, roles }))).toEqual({
        ok: false,
        code: "refund_window_closed",
      });
    }
  });

  it("needs supervisor or admin above the limit, not at it", ({ expect }) => {
    expect(decideRefundPolicy(policy, facts({ amountCents: 5_000 }))).toEqual({ ok: true });
    expect(decideRefundPolicy(policy, facts({ amountCents: 5_001 }))).toEqual({
      ok: false,
      code: "approval_required",
    });
    expect(decideRefundPolicy(policy, facts({ amountCents: 5_001, roles: ["gate", "analyst"] }))).toEqual({
      ok: false,
      code: "approval_required",
    });
    for (const roles of [["pos", "supervisor"], ["admin"], ["supervisor"]] as OperatorRole[][]) {
      expect(decideRefundPolicy(policy, facts({ amountCents: 100_000, roles }))).toEqual({ ok: true });
    }
  });

  it("judges the window before approval", ({ expect }) => {
    expect(
      decideRefundPolicy(policy, facts({ ageMs: policy.windowSeconds * 1000 + 1, amountCents: 9_999 })),
    ).toEqual({ ok: false, code: "refund_window_closed" });
  });
});
