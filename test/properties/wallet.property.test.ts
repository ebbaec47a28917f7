import fc from "fast-check";
import { describe, it } from "vitest";
import { operatorToken, seedProduct } from "../support/fixtures";
import { type CallOptions, callJson } from "../support/http";
import { buyerToken } from "../support/tokens";
import { allTransactions, posTill, storedWallet, type Till, walletOf, walletQr } from "../support/wallet";
import { deliver, newPaymentId } from "../support/webhooks";

// Random programs against one wallet. Each step fires its operations CONCURRENTLY through the real HTTP
// API (top-ups with their signed webhooks, POS deductions with fresh wallet tokens, refunds, admin
// adjustments, orders paying part by credit, and replays of earlier requests under their own keys).
// Afterwards the database must satisfy the wallet's invariants, and the ledger must contain exactly the
// transactions the API reported as created.

const NUM_RUNS = 15;
const MAX_STEPS = 4;
const MAX_OPS_PER_STEP = 6;
const PRODUCT_PRICE_CENTS = 1_200;

type Op =
  | { kind: "topup"; cents: number; redeliveries: number }
  | { kind: "deduct"; cents: number }
  | { kind: "refund"; pick: number; cents: number | null }
  | { kind: "adjust"; direction: "credit" | "debit"; cents: number }
  | { kind: "order"; credits: number; outcome: "SUCCESS" | "FAILED" | "none" }
  | { kind: "replay"; pick: number };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("topup" as const),
    cents: fc.integer({ min: 500, max: 3_000 }),
    redeliveries: fc.integer({ min: 0, max: 2 }),
  }),
  fc.record({ kind: fc.constant("deduct" as const), cents: fc.integer({ min: 1, max: 1_500 }) }),
  fc.record({
    kind: fc.constant("refund" as const),
    pick: fc.nat(),
    cents: fc.option(fc.integer({ min: 1, max: 800 }), { nil: null }),
  }),
  fc.record({
    kind: fc.constant("adjust" as const),
    direction: fc.constantFrom("credit" as const, "debit" as const),
    cents: fc.integer({ min: 1, max: 1_500 }),
  }),
  fc.record({
    kind: fc.constant("order" as const),
    credits: fc.integer({ min: 1, max: PRODUCT_PRICE_CENTS - 1 }),
    outcome: fc.constantFrom("SUCCESS" as const, "FAILED" as const, "none" as const),
  }),
  fc.record({ kind: fc.constant("replay" as const), pick: fc.nat() }),
);

const programArbitrary = fc.record({
  /** Credited by an admin before the first step, so most programs have something to spend. */
  openingCents: fc.integer({ min: 0, max: 6_000 }),
  steps: fc.array(fc.array(opArbitrary, { minLength: 1, maxLength: MAX_OPS_PER_STEP }), {
    minLength: 1,
    maxLength: MAX_STEPS,
  }),
});

/** A request that carried an Idempotency-Key, kept so a later step can send it again verbatim. */
interface Sent {
  method: string;
  path: string;
  options: CallOptions;
  status: number;
  body: Record<string, unknown>;
}

interface Actors {
  admin: string;
  till: Till;
  productId: string;
}

interface RunState {
  userId: string;
  buyer: string;
  sent: Sent[];
  /** Deductions the API reported, refundable by a later step. */
  deductions: string[];
  /** Ledger rows the API reported as created, by id, with their signed amount. */
  created: Map<string, number>;
  /** Orders whose credits were posted (DEDUCT referencing the order). */
  postedOrders: Map<string, number>;
}

async function send(state: RunState, method: string, path: string, options: CallOptions): Promise<Sent> {
  const response = await callJson<Record<string, unknown>>(method, path, options);
  const sent = { method, path, options, status: response.status, body: response.body };
  if (options.idempotencyKey !== undefined) state.sent.push(sent);
  return sent;
}

function record(state: RunState, sent: Sent): void {
  if (sent.status !== 201) return;
  if (sent.path === "/pos/deductions") {
    const id = String(sent.body.transaction_id);
    state.created.set(id, -Number(sent.body.amount_cents));
    if (!state.deductions.includes(id)) state.deductions.push(id);
  } else if (sent.path.endsWith("/refund")) {
    state.created.set(String(sent.body.id), Number(sent.body.amount_cents));
  } else if (sent.path.includes("/adjustments")) {
    const sign = sent.body.direction === "credit" ? 1 : -1;
    state.created.set(String(sent.body.id), sign * Number(sent.body.amount_cents));
  }
}

async function runOp(op: Op, state: RunState, actors: Actors, earlier: readonly Sent[]): Promise<void> {
  switch (op.kind) {
    case "topup": {
      const started = await send(state, "POST", "/wallet/topups", {
        token: state.buyer,
        idempotencyKey: crypto.randomUUID(),
        body: { amount_cents: op.cents },
      });
      if (started.status !== 201) throw new Error(`top-up refused: ${started.status}`);
      const payment = {
        payment_id: newPaymentId(),
        reference: String(started.body.topup_id),
        status: "SUCCESS" as const,
        amount_cents: op.cents,
        currency: "EUR",
      };
      const deliveries = await Promise.all(
        Array.from({ length: 1 + op.redeliveries }, () => deliver<{ outcome: string }>(payment)),
      );
      const outcomes = deliveries.map((d) => d.body.outcome);
      if (outcomes.filter((o) => o === "processed").length !== 1) {
        throw new Error(`top-up deliveries: ${outcomes.join(",")}`);
      }
      state.created.set(`topup:${payment.reference}`, op.cents);
      return;
    }
    case "deduct": {
      const qr = await walletQr(state.buyer);
      record(
        state,
        await send(state, "POST", "/pos/deductions", {
          token: actors.till.token,
          idempotencyKey: crypto.randomUUID(),
          body: { qr_token: qr, amount_cents: op.cents, session_id: actors.till.sessionId },
        }),
      );
      return;
    }
    case "refund": {
      if (state.deductions.length === 0) return;
      const id = state.deductions[op.pick % state.deductions.length];
      record(
        state,
        await send(state, "POST", `/pos/deductions/${id}/refund`, {
          token: actors.till.token,
          idempotencyKey: crypto.randomUUID(),
          body: {
            reason: "property",
            session_id: actors.till.sessionId,
            ...(op.cents !== null && { amount_cents: op.cents }),
          },
        }),
      );
      return;
    }
    case "adjust": {
      record(
        state,
        await send(state, "POST", `/admin/wallets/${encodeURIComponent(state.userId)}/adjustments`, {
          token: actors.admin,
          idempotencyKey: crypto.randomUUID(),
          body: { direction: op.direction, amount_cents: op.cents, reason: "property" },
        }),
      );
      return;
    }
    case "order": {
      const order = await send(state, "POST", "/orders", {
        token: state.buyer,
        idempotencyKey: crypto.randomUUID(),
        body: { items: [{ product_id: actors.productId, quantity: 1 }], credits_cents: op.credits },
      });
      if (order.status !== 201 || op.outcome === "none") return;
      const paid = await deliver<{ outcome: string }>({
        payment_id: newPaymentId(),
        reference: String(order.body.order_id),
        status: op.outcome,
        amount_cents: Number(order.body.amount_due_cents),
        currency: "EUR",
      });
      if (op.outcome === "SUCCESS" && paid.body.outcome === "processed") {
        state.postedOrders.set(String(order.body.order_id), -op.credits);
      }
      return;
    }
    case "replay": {
      if (earlier.length === 0) return;
      const original = earlier[op.pick % earlier.length] as Sent;
      const again = await callJson<Record<string, unknown>>(original.method, original.path, original.options);
      // The original finished in an earlier step: same key, same body → the very same answer.
      if (again.status !== original.status || JSON.stringify(again.body) !== JSON.stringify(original.body)) {
        throw new Error(
          `replay of ${original.path} differed: ${original.status} ${JSON.stringify(original.body)} → ` +
            `${again.status} ${JSON.stringify(again.body)}`,
        );
      }
      if (again.headers.get("idempotent-replayed") !== "true")
        throw new Error("replay not marked as replayed");
      return;
    }
  }
}

describe("wallet invariants under concurrent random programs", () => {
  it("balance = signed sum of the ledger, never negative, held ≤ balance, one row per key", async ({
    expect,
  }) => {
    const admin = await operatorToken(["admin"]);
    const till = await posTill();
    const product = await seedProduct({ price_cents: PRODUCT_PRICE_CENTS, sellable: 100_000 });
    const actors: Actors = { admin: admin.token, till, productId: product.id };

    await fc.assert(
      fc.asyncProperty(programArbitrary, async (program) => {
        const userId = `prop-${crypto.randomUUID()}`;
        const state: RunState = {
          userId,
          buyer: await buyerToken(userId),
          sent: [],
          deductions: [],
          created: new Map(),
          postedOrders: new Map(),
        };
        if (program.openingCents > 0) {
          await runOp(
            { kind: "adjust", direction: "credit", cents: program.openingCents },
            state,
            actors,
            [],
          );
        }
        for (const step of program.steps) {
          const earlier = [...state.sent];
          await Promise.all(step.map((op) => runOp(op, state, actors, earlier)));
        }

        const stored = await storedWallet(userId);
        expect(stored.balanceCents).toBe(stored.ledgerSumCents);
        expect(stored.balanceCents).toBeGreaterThanOrEqual(0);
        expect(stored.heldCents).toBeGreaterThanOrEqual(0);
        expect(stored.heldCents).toBeLessThanOrEqual(stored.balanceCents);
        expect(stored.journalBalanceCents).toBe(stored.balanceCents);
        const keys = stored.ledger.map((row) => row.idempotencyKey);
        expect(new Set(keys).size).toBe(keys.length);

        // Every refund total stays within its deduction.
        for (const deduction of stored.ledger.filter((row) => row.type === "DEDUCT")) {
          const refunded = stored.ledger
            .filter((row) => row.reversalOf === deduction.id)
            .reduce((sum, row) => sum + row.amountCents, 0);
          expect(refunded).toBeLessThanOrEqual(deduction.amountCents);
        }

        // The ledger holds exactly what the API said it created: nothing lost, nothing doubled.
        const byRow = new Map<string, number>();
        for (const row of stored.ledger) {
          const signed = row.direction === "credit" ? row.amountCents : -row.amountCents;
          if (row.type === "PURCHASE") byRow.set(`topup:${row.reference}`, signed);
          else if (row.idempotencyKey.startsWith("order:")) byRow.set(`order:${row.reference}`, signed);
          else byRow.set(row.id, signed);
        }
        const expected = new Map(state.created);
        for (const [orderId, signed] of state.postedOrders) expected.set(`order:${orderId}`, signed);
        expect(byRow).toEqual(expected);

        // What the buyer reads agrees with the database and with itself.
        const wallet = await walletOf(state.buyer);
        expect(wallet).toMatchObject({ balance_cents: stored.balanceCents, held_cents: stored.heldCents });
        const listed = await allTransactions(state.buyer);
        expect(listed).toHaveLength(stored.ledger.length);
        const listedSum = listed.reduce(
          (sum, row) => sum + (row.direction === "credit" ? row.amount_cents : -row.amount_cents),
          0,
        );
        expect(listedSum).toBe(wallet.balance_cents);
      }),
      { numRuns: NUM_RUNS },
    );

    // All those concurrent appends left an intact audit chain.
    const verified = await callJson("GET", "/admin/audit/verify", { token: admin.token });
    expect(verified.body).toMatchObject({ ok: true });
  });
});
