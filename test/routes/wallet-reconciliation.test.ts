import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { CRON_DAILY_EXPORT } from "../../src/cron";
import { newWalletTransactionId } from "../../src/ids";
import type { WalletObject } from "../../src/objects/wallet";
import { WalletJournal } from "../../src/objects/wallet-journal";
import { UNSENT_STUCK_AFTER_MS, type WalletMismatch } from "../../src/services/wallet-reconciliation";
import { operatorToken } from "../support/fixtures";
import { callJson } from "../support/http";
import {
  adjust,
  deduct,
  fundedWallet,
  type Problem,
  posTill,
  refund,
  storedWallet,
  walletQr,
} from "../support/wallet";
import { runCron } from "../support/worker";

// Reconciliation compares each wallet's balance (D1's row, and its journal's in its object) with the
// signed sum and the count of its rows in D1's copy of the ledger, and reports what differs without
// touching it. A copy that may only be behind (events unsent, a posting younger than the lag bound) is
// counted as in flight, not as a mismatch.

interface ReconciliationBody extends Problem {
  checked: number;
  in_flight: number;
  mismatches: WalletMismatch[];
  next_cursor: string | null;
}

async function reconcileEverything(token: string, limit = 2) {
  const pages: ReconciliationBody[] = [];
  let cursor: string | undefined;
  do {
    const page = await callJson<ReconciliationBody>("POST", "/admin/wallets/reconciliation", {
      token,
      body: { limit, ...(cursor === undefined ? {} : { cursor }) },
    });
    if (page.status !== 200) throw new Error(`reconciliation answered ${page.status}`);
    pages.push(page.body);
    cursor = page.body.next_cursor ?? undefined;
  } while (cursor !== undefined);
  return {
    checked: pages.reduce((sum, page) => sum + page.checked, 0),
    inFlight: pages.reduce((sum, page) => sum + page.in_flight, 0),
    mismatches: pages.flatMap((page) => page.mismatches),
  };
}

const stubFor = (userId: string) => env.WALLETS.get(env.WALLETS.idFromName(userId));

/**
 * Posts a debit straight into the wallet's journal, with no event: a posting D1's copy never hears of
 * (call inside runInDurableObject, on an open journal).
 */
function postUnannounced(state: DurableObjectState, userId: string, amountCents: number, createdAt: string) {
  new WalletJournal(state.storage.sql).record(
    {
      id: newWalletTransactionId(state.id.toString()),
      userId,
      type: "ADJUSTMENT",
      direction: "debit",
      amountCents,
      currency: "EUR",
      reference: null,
      idempotencyKey: `unannounced:${crypto.randomUUID()}`,
      createdBy: "operator:test",
      createdAt,
    },
    "posted",
  );
}

describe("POST /admin/wallets/reconciliation", () => {
  it("finds nothing wrong after top-ups, sales, a refund and adjustments, page after page", async ({
    expect,
  }) => {
    const admin = await operatorToken(["admin"]);
    const till = await posTill();
    const wallets = await Promise.all([fundedWallet(5_000), fundedWallet(2_000), fundedWallet(700)]);
    const [first, second] = wallets;
    if (!first || !second) throw new Error("no wallets");
    const sale = await deduct(till, await walletQr(first.token), 1_250);
    expect(sale.status).toBe(201);
    await deduct(till, await walletQr(second.token), 300);
    expect((await refund(till, sale.body.transaction_id, { amount_cents: 250 })).status).toBe(201);
    expect((await adjust(admin.token, first.userId, "debit", 100)).status).toBe(201);
    // Once D1's copy has every row, each wallet is compared (not skipped as in flight), and agrees.
    for (const wallet of wallets) await storedWallet(wallet.userId);

    const result = await reconcileEverything(admin.token, 100);
    expect(result.mismatches).toEqual([]);
    expect(result.checked).toBeGreaterThanOrEqual(wallets.length);
  });

  it("reports a balance row that is not the ledger's sum, and fixes nothing", async ({ expect }) => {
    const admin = await operatorToken(["admin"]);
    const { userId } = await fundedWallet(1_000);
    await storedWallet(userId);
    // What a broken trigger or a hand edit would leave: 100 cents the ledger never gave.
    await env.DB.prepare("UPDATE wallet_balances SET balance_cents = balance_cents + 100 WHERE user_id = ?")
      .bind(userId)
      .run();
    try {
      const mine = (await reconcileEverything(admin.token, 100)).mismatches.filter(
        (m) => m.user_id === userId,
      );
      expect(mine).toEqual([
        {
          user_id: userId,
          reason: "balance_row_differs",
          ledger_sum_cents: 1_000,
          balance_row_cents: 1_100,
          object_balance_cents: null,
        },
      ]);
      // Reported, not corrected: the row still says what it said, and so does the next run.
      const row = await env.DB.prepare("SELECT balance_cents FROM wallet_balances WHERE user_id = ?")
        .bind(userId)
        .first<{ balance_cents: number }>();
      expect(row?.balance_cents).toBe(1_100);
      // The daily cron runs the same check; a mismatch is logged, and the run itself succeeds.
      expect((await runCron(CRON_DAILY_EXPORT, Date.now())).outcome).toBe("ok");
    } finally {
      await env.DB.prepare("UPDATE wallet_balances SET balance_cents = balance_cents - 100 WHERE user_id = ?")
        .bind(userId)
        .run();
    }
  });

  it("reports a row in D1's copy that no journal made, once the lag bound has passed", async ({ expect }) => {
    const admin = await operatorToken(["admin"]);
    const { userId } = await fundedWallet(1_000);
    await storedWallet(userId);
    // A row in the copy that the wallet's journal never posted, dated past the lag bound.
    const createdAt = new Date(Date.now() - 60_000).toISOString();
    await env.DB.prepare(
      `INSERT INTO wallet_ledger (id, user_id, type, direction, amount_cents, currency, idempotency_key,
         created_at, created_by) VALUES (?, ?, 'ADJUSTMENT', 'credit', 50, 'EUR', ?, ?, 'operator:ghost')`,
    )
      .bind(`txn_ghost${crypto.randomUUID().slice(0, 8)}`, userId, `ghost:${crypto.randomUUID()}`, createdAt)
      .run();
    // The journal's newest posting (the top-up) must be older than the bound too: date it back.
    await runInDurableObject(stubFor(userId), (_instance: WalletObject, state) => {
      state.storage.sql.exec("UPDATE transfers SET created_at = ?", createdAt);
    });
    const mine = (await reconcileEverything(admin.token, 100)).mismatches.filter((m) => m.user_id === userId);
    expect(mine).toEqual([
      {
        user_id: userId,
        reason: "object_differs",
        ledger_sum_cents: 1_050,
        balance_row_cents: 1_050,
        object_balance_cents: 1_000,
      },
    ]);
  });

  it("reports a paid wallet whose first row never reached D1: no balance row there, so nothing else would", async ({
    expect,
  }) => {
    const admin = await operatorToken(["admin"]);
    const userId = `wallet-${crypto.randomUUID()}`;
    const topupId = `top_${crypto.randomUUID().slice(0, 12)}`;
    const paidAt = new Date(Date.now() - 60 * 60_000).toISOString();
    // D1 knows of the paid top-up; the PURCHASE the journal posted for it was never copied (its event was
    // dead-lettered), so D1 has no ledger row and no balance row for this wallet.
    await env.DB.prepare(
      `INSERT INTO wallet_topups (id, user_id, amount_cents, currency, status, idempotency_key, created_at,
         updated_at) VALUES (?, ?, 1000, 'EUR', 'PAID', ?, ?, ?)`,
    )
      .bind(topupId, userId, crypto.randomUUID(), paidAt, paidAt)
      .run();
    await runInDurableObject(stubFor(userId), async (instance: WalletObject, state) => {
      await instance.view(userId); // opens the journal: D1 has nothing of this wallet
      new WalletJournal(state.storage.sql).record(
        {
          id: newWalletTransactionId(state.id.toString()),
          userId,
          type: "PURCHASE",
          direction: "credit",
          amountCents: 1_000,
          currency: "EUR",
          reference: topupId,
          idempotencyKey: `topup:${topupId}`,
          createdBy: "system:payments",
          createdAt: paidAt,
        },
        "posted",
      );
    });
    const mine = (await reconcileEverything(admin.token, 100)).mismatches.filter((m) => m.user_id === userId);
    expect(mine).toEqual([
      {
        user_id: userId,
        reason: "object_differs",
        ledger_sum_cents: 0,
        balance_row_cents: 0,
        object_balance_cents: 1_000,
      },
    ]);
  });

  it("reports a wallet whose events have stayed unsent far past the window: stuck, not in flight", async ({
    expect,
  }) => {
    const admin = await operatorToken(["admin"]);
    const { userId } = await fundedWallet(1_000);
    await storedWallet(userId);
    const longAgo = new Date(Date.now() - UNSENT_STUCK_AFTER_MS - 60_000).toISOString();
    await runInDurableObject(stubFor(userId), (_instance: WalletObject, state) => {
      postUnannounced(state, userId, 400, longAgo);
      // Its event is still in the outbox, as if every send since had failed.
      state.storage.sql.exec(
        "INSERT INTO outbox (payload) VALUES (?)",
        JSON.stringify({ type: "wallet.posted", ledger: null }),
      );
      state.storage.sql.exec("UPDATE transfers SET created_at = ?", longAgo);
    });
    const result = await reconcileEverything(admin.token, 100);
    expect(result.mismatches.filter((m) => m.user_id === userId)).toEqual([
      {
        user_id: userId,
        reason: "object_differs",
        ledger_sum_cents: 1_000,
        balance_row_cents: 1_000,
        object_balance_cents: 600,
      },
    ]);
  });

  it("counts a wallet whose copy may still be behind as in flight, not as a mismatch", async ({ expect }) => {
    const admin = await operatorToken(["admin"]);
    const { userId } = await fundedWallet(1_000);
    await storedWallet(userId);
    // A posting the journal has and D1 has not seen yet (its event not sent): the copy is behind.
    await runInDurableObject(stubFor(userId), (instance: WalletObject, state) => {
      postUnannounced(state, userId, 400, new Date().toISOString());
      return instance;
    });
    const result = await reconcileEverything(admin.token, 100);
    expect(result.mismatches.filter((m) => m.user_id === userId)).toEqual([]);
    expect(result.inFlight).toBeGreaterThanOrEqual(1);
  });

  it("is for admins only; a cursor that is not ours is a 400", async ({ expect }) => {
    for (const roles of [["analyst"], ["supervisor"], ["pos"]] as const) {
      const other = await operatorToken([...roles], roles[0] === "pos" ? ["evt-x"] : []);
      expect(
        await callJson("POST", "/admin/wallets/reconciliation", { token: other.token, body: {} }),
      ).toMatchObject({ status: 403, body: { code: "forbidden" } });
    }
    const admin = await operatorToken(["admin"]);
    expect(
      await callJson("POST", "/admin/wallets/reconciliation", {
        token: admin.token,
        body: { cursor: "%%%" },
      }),
    ).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    expect(
      await callJson("POST", "/admin/wallets/reconciliation", { token: admin.token, body: { limit: 0 } }),
    ).toMatchObject({ status: 400, body: { code: "validation_failed" } });
  });
});
