import { env } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { signWalletQrToken } from "../../src/auth/qr-token";
import { auditLog, walletReceipts } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import { qrSigningConfig } from "../../src/http/refusals";
import type { OperatorRole } from "../../src/types/domain";
import { db, operatorToken } from "../support/fixtures";
import { callJson } from "../support/http";
import { openSession, registeredDevice } from "../support/staff";
import { gateSession, paidTicket, qrToken } from "../support/tickets";
import {
  type DeductionBody,
  deduct,
  fundedWallet,
  type Problem,
  posSessionFor,
  posTill,
  refund,
  storedWallet,
  type Till,
  topUp,
  walletOf,
  walletQr,
} from "../support/wallet";

interface LookupBody {
  wallet_ref: string;
  balance_cents: number;
  available_cents: number;
  currency: string;
  last_receipt?: { id: string; transaction_id: string; amount_cents: number; device_id: string | null };
  code?: string;
}

function lookup(till: Till, qr: string) {
  return callJson<LookupBody>("POST", "/pos/wallet-lookup", {
    token: till.token,
    body: { qr_token: qr, session_id: till.sessionId },
  });
}

/** Polls until `read` gives a value, for what the queue writes a moment after the response. */
async function eventually<T>(read: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("POST /pos/wallet-lookup", () => {
  it("shows an opaque ref, the balance and the last receipt, never history; does not spend the token", async ({
    expect,
  }) => {
    const { userId, token } = await fundedWallet(2_000);
    const till = await posTill();
    const qr = await walletQr(token);
    const first = await lookup(till, qr);
    expect(first.status).toBe(200);
    expect(Object.keys(first.body).sort()).toEqual([
      "available_cents",
      "balance_cents",
      "currency",
      "wallet_ref",
    ]);
    expect(first.body).toMatchObject({ balance_cents: 2_000, available_cents: 2_000, currency: "EUR" });
    expect(first.body.wallet_ref).toMatch(/^wal_[0-9a-z]{24}$/);
    expect(JSON.stringify(first.body)).not.toContain(userId);
    // Stable at one event, unlinkable across events.
    expect((await lookup(till, await walletQr(token))).body.wallet_ref).toBe(first.body.wallet_ref);
    const elsewhere = await posTill();
    expect((await lookup(elsewhere, await walletQr(token))).body.wallet_ref).not.toBe(first.body.wallet_ref);

    // The looked-up token still pays.
    const paid = await deduct(till, qr, 450);
    expect(paid.status).toBe(201);
    const receipt = await eventually(
      async () =>
        (
          await db()
            .select()
            .from(walletReceipts)
            .where(eq(walletReceipts.transactionId, paid.body.transaction_id))
        )[0],
    );
    expect(receipt).toMatchObject({ id: paid.body.receipt.id, kind: "DEDUCTION", deviceId: till.deviceId });
    const after = await lookup(till, await walletQr(token));
    expect(after.body).toMatchObject({
      balance_cents: 1_550,
      last_receipt: {
        id: paid.body.receipt.id,
        transaction_id: paid.body.transaction_id,
        amount_cents: 450,
        device_id: till.deviceId,
      },
    });
    // Another event's till sees no receipt from this one.
    expect((await lookup(elsewhere, await walletQr(token))).body.last_receipt).toBeUndefined();

    // Audit entries for till actions are chained by the queue consumer, a moment after the answer.
    const audited = await eventually(async () => {
      const rows = await db()
        .select()
        .from(auditLog)
        .where(and(eq(auditLog.actor, till.operatorId), eq(auditLog.action, "pos.wallet_lookup")));
      return rows.length >= 3 ? rows : undefined;
    });
    expect(audited?.length).toBeGreaterThanOrEqual(3);
  });

  it("needs a POS operator with their own open POS session", async ({ expect }) => {
    const { token } = await fundedWallet(0);
    const qr = await walletQr(token);
    const till = await posTill();
    expect(
      (
        await callJson("POST", "/pos/wallet-lookup", {
          token,
          body: { qr_token: qr, session_id: till.sessionId },
        })
      ).status,
    ).toBe(401);
    const gate = await gateSession();
    const asGate = await callJson("POST", "/pos/wallet-lookup", {
      token: gate.token,
      body: { qr_token: qr, session_id: gate.sessionId },
    });
    expect(asGate).toMatchObject({ status: 403, body: { code: "forbidden" } });
    const other = await posTill(till.eventId);
    const notMine = await callJson("POST", "/pos/wallet-lookup", {
      token: other.token,
      body: { qr_token: qr, session_id: till.sessionId },
    });
    expect(notMine).toMatchObject({ status: 403, body: { code: "session_invalid" } });
    // A gate session is not a POS session, even for an operator holding both roles.
    const both = await operatorToken(["pos", "gate"], [till.eventId]);
    const gateDevice = await registeredDevice({ kind: "gate", location_id: "loc-x" });
    const gateSessionOfBoth = await openSession(both.token, { device_id: gateDevice });
    const wrongKind = await callJson("POST", "/pos/wallet-lookup", {
      token: both.token,
      body: { qr_token: qr, session_id: gateSessionOfBoth.body.session_id },
    });
    expect(wrongKind).toMatchObject({ status: 403, body: { code: "session_invalid" } });
  });
});

describe("POST /pos/deductions: concurrency", () => {
  it("balance b, N parallel deductions of a, each with its own token: exactly ⌊b/a⌋ succeed, the rest 402", async ({
    expect,
  }) => {
    const { userId, token } = await fundedWallet(1_000);
    const till = await posTill();
    const tokens = await Promise.all(Array.from({ length: 9 }, () => walletQr(token)));
    const results = await Promise.all(tokens.map((qr) => deduct(till, qr, 300)));
    const ok = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 402);
    expect(ok).toHaveLength(3);
    expect(refused).toHaveLength(6);
    // Serialized per wallet: the successes saw the balance step down one deduction at a time.
    expect(ok.map((r) => r.body.balance_cents).sort((a, b) => a - b)).toEqual([100, 400, 700]);
    for (const r of refused) {
      expect(r.body).toMatchObject({ code: "insufficient_funds", balance_cents: 100, available_cents: 100 });
      expect(r.body.topup_url).toMatch(/^https?:\/\/.+#wallet$/);
    }
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 100, ledgerSumCents: 100 });
    expect((await walletOf(token)).balance_cents).toBe(100);
  });

  it("one key sent 10 times at once: one ledger row; every overlap is answered with the same deduction", async ({
    expect,
  }) => {
    const { userId, token } = await fundedWallet(5_000);
    const till = await posTill();
    const qr = await walletQr(token);
    const key = crypto.randomUUID();
    const results = await Promise.all(
      Array.from({ length: 10 }, () => deduct(till, qr, 700, { key, reference: "sale-1" })),
    );
    // The key is held by the wallet's object, which answers one request at a time: overlaps are replays.
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(201));
    expect(results.filter((r) => r.headers.get("idempotent-replayed") === "true")).toHaveLength(9);
    const first = results[0]?.body as DeductionBody;
    for (const r of results) expect(r.body).toEqual(first);
    const replay = await deduct(till, qr, 700, { key, reference: "sale-1" });
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(first);
    expect(first).toMatchObject({
      amount_cents: 700,
      balance_cents: 4_300,
      receipt: { event_id: till.eventId },
    });

    const reused = await deduct(till, qr, 701, { key, reference: "sale-1" });
    expect(reused).toMatchObject({ status: 422, body: { code: "idempotency_key_reused" } });
    const stored = await storedWallet(userId);
    expect(stored.ledger.filter((row) => row.type === "DEDUCT")).toHaveLength(1);
    expect(stored).toMatchObject({ balanceCents: 4_300, ledgerSumCents: 4_300 });
  });

  it("a replay after later sales answers the wallet as it was right after the first, not as it is now", async ({
    expect,
  }) => {
    const { token } = await fundedWallet(5_000);
    const till = await posTill();
    const key = crypto.randomUUID();
    const qr = await walletQr(token);
    const first = await deduct(till, qr, 700, { key });
    expect(first).toMatchObject({ status: 201, body: { balance_cents: 4_300, available_cents: 4_300 } });
    const later = await deduct(till, await walletQr(token), 1_000);
    expect(later.body).toMatchObject({ balance_cents: 3_300 });
    const replay = await deduct(till, qr, 700, { key });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(first.body);
  });

  it("insufficient, then a top-up, then the same key: still insufficient (a new attempt needs a new key)", async ({
    expect,
  }) => {
    const { userId, token } = await fundedWallet(500);
    const till = await posTill();
    const qr = await walletQr(token);
    const key = crypto.randomUUID();
    const short = await deduct(till, qr, 800, { key });
    expect(short).toMatchObject({ status: 402, body: { code: "insufficient_funds", balance_cents: 500 } });
    await topUp(userId, 1_000);
    const retried = await deduct(till, qr, 800, { key });
    expect(retried.status).toBe(402);
    expect(retried.headers.get("idempotent-replayed")).toBe("true");
    expect(retried.body).toEqual(short.body);
    // The refused attempt did not spend the token: a new key with it goes through.
    const fresh = await deduct(till, qr, 800);
    expect(fresh).toMatchObject({ status: 201, body: { balance_cents: 700 } });
  });
});

describe("POST /pos/deductions: tokens", () => {
  it("a token that paid once is token_replayed under any other key", async ({ expect }) => {
    const { userId, token } = await fundedWallet(2_000);
    const till = await posTill();
    const qr = await walletQr(token);
    expect((await deduct(till, qr, 100)).status).toBe(201);
    const again = await deduct(till, qr, 100);
    expect(again).toMatchObject({ status: 409, body: { code: "token_replayed" } });
    // Also from another till of another event.
    expect((await deduct(await posTill(), qr, 100)).body.code).toBe("token_replayed");
    expect((await storedWallet(userId)).balanceCents).toBe(1_900);
  });

  it("a ticket's gate token is token_invalid at a till; an expired wallet token is token_expired", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const till = await posTill();
    const ticket = await paidTicket([{ function: "bus", uses: 2 }]);
    const ticketToken = await qrToken(ticket);
    expect((await deduct(till, ticketToken, 100)).body.code).toBe("token_invalid");
    expect((await lookup(till, ticketToken)).body.code).toBe("token_invalid");
    expect((await deduct(till, "not.a.token", 100)).body.code).toBe("token_invalid");

    const stale = await signWalletQrToken(
      qrSigningConfig(loadConfig(env)),
      userId,
      new Date(Date.now() - 10 * 60_000),
    );
    const expired = await deduct(till, stale.token, 100);
    expect(expired).toMatchObject({ status: 422, body: { code: "token_expired" } });
    expect((await storedWallet(userId)).balanceCents).toBe(1_000);

    const refusals =
      (await eventually(async () => {
        const rows = await db()
          .select()
          .from(auditLog)
          .where(and(eq(auditLog.actor, till.operatorId), eq(auditLog.action, "pos.deduct")));
        return rows.length >= 3 ? rows : undefined;
      })) ?? [];
    expect(refusals.map((row) => JSON.parse(row.details).code).sort()).toEqual([
      "token_expired",
      "token_invalid",
      "token_invalid",
    ]);
  });

  it("a deduction is audited with its till, and its receipt goes out through the queue", async ({
    expect,
  }) => {
    const { userId, token } = await fundedWallet(1_000);
    const till = await posTill();
    const paid = await deduct(till, await walletQr(token), 250, { reference: "till-1/sale-9" });
    expect(paid.body.receipt).toMatchObject({ event_id: till.eventId, device_id: till.deviceId });
    expect(paid.body.receipt.id).toBe(paid.body.transaction_id.replace(/^txn_/, "rct_"));
    const entry = await eventually(async () => {
      const [row] = await db().select().from(auditLog).where(eq(auditLog.target, paid.body.transaction_id));
      return row;
    });
    expect(entry).toMatchObject({ actor: till.operatorId, action: "pos.deduct" });
    expect(JSON.parse(entry?.details ?? "{}")).toMatchObject({
      result: "accepted",
      user_id: userId,
      amount_cents: 250,
      session_id: till.sessionId,
      device_id: till.deviceId,
      event_id: till.eventId,
      reference: "till-1/sale-9",
    });
    const receipt = await eventually(
      async () =>
        (await db().select().from(walletReceipts).where(eq(walletReceipts.id, paid.body.receipt.id)))[0],
    );
    expect(receipt).toMatchObject({ amountCents: 250, eventId: till.eventId, reference: "till-1/sale-9" });
    const [ledgerRow] = (await storedWallet(userId)).ledger.filter((row) => row.type === "DEDUCT");
    // Made at the till (its operator is in the event and the audit entry above), once under the till's key.
    expect(ledgerRow).toMatchObject({ eventId: till.eventId, createdBy: `device:${till.deviceId}` });
    expect(ledgerRow?.idempotencyKey).toMatch(new RegExp(`^pos\\.deduct:${till.operatorId}:`));
  });
});

describe("POST /pos/deductions/{id}/refund", () => {
  async function deduction(amountCents: number, till?: Till) {
    const { userId, token } = await fundedWallet(5_000);
    const at = till ?? (await posTill());
    const paid = await deduct(at, await walletQr(token), amountCents);
    if (paid.status !== 201) throw new Error(`deduction failed: ${paid.status}`);
    return { userId, token, till: at, id: paid.body.transaction_id };
  }

  it("partial + partial up to the original; one more cent is 409; the balance comes back exactly", async ({
    expect,
  }) => {
    const { userId, till, id } = await deduction(1_000);
    const first = await refund(till, id, { amount_cents: 300 });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      type: "REFUND",
      direction: "credit",
      amount_cents: 300,
      reversal_of: id,
      event_id: till.eventId,
      created_by: `device:${till.deviceId}`,
    });
    expect(first.body.idempotency_key).toMatch(new RegExp(`^pos\\.refund:${till.operatorId}:`));
    expect(first.body.user_id).toBeUndefined();
    expect(first.body.wallet_ref).toMatch(/^wal_/);
    expect((await refund(till, id, { amount_cents: 700 })).status).toBe(201);
    const over = await refund(till, id, { amount_cents: 1 });
    expect(over).toMatchObject({
      status: 409,
      body: { code: "refund_exceeds_original", refundable_cents: 0 },
    });
    const stored = await storedWallet(userId);
    expect(stored).toMatchObject({ balanceCents: 5_000, ledgerSumCents: 5_000 });
    const audited = await db().select().from(auditLog).where(eq(auditLog.target, first.body.id));
    expect(audited[0]).toMatchObject({ action: "pos.refund", actor: till.operatorId });
    expect(JSON.parse(audited[0]?.details ?? "{}")).toMatchObject({ reason: "test refund", reversal_of: id });
  });

  it("without an amount refunds what is left; a second full reversal is refused; idempotent per key", async ({
    expect,
  }) => {
    const { till, id } = await deduction(800);
    expect((await refund(till, id, { amount_cents: 200 })).status).toBe(201);
    const key = crypto.randomUUID();
    const rest = await refund(till, id, {}, key);
    expect(rest).toMatchObject({ status: 201, body: { amount_cents: 600 } });
    const replay = await refund(till, id, {}, key);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(rest.body);
    expect((await refund(till, id)).body.code).toBe("refund_exceeds_original");
    expect((await refund(till, id, { amount_cents: 5 }, key)).body.code).toBe("idempotency_key_reused");
  });

  it("concurrent refunds racing past the original never exceed it", async ({ expect }) => {
    const { userId, till, id } = await deduction(1_000);
    const admin = await posSessionFor((await operatorToken(["admin"])).token, till.eventId);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => refund(i % 2 === 0 ? till : admin, id, { amount_cents: 300 })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(3);
    const refused = results.filter((r) => r.status === 409);
    expect(refused).toHaveLength(5);
    for (const r of refused) expect(r.body.code).toBe("refund_exceeds_original");
    const refunds = (await storedWallet(userId)).ledger.filter((row) => row.type === "REFUND");
    expect(refunds.reduce((sum, row) => sum + row.amountCents, 0)).toBe(900);
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 4_900, ledgerSumCents: 4_900 });
  });

  it("someone else's event is 404; an admin may refund any deduction; only deductions are refundable", async ({
    expect,
  }) => {
    const { userId, till, id } = await deduction(500);
    const otherEvent = await posTill();
    expect((await refund(otherEvent, id)).status).toBe(404);
    const sameEventOtherOperator = await operatorToken(["pos"], [till.eventId]);
    const colleague = await posSessionFor(sameEventOtherOperator.token, till.eventId);
    expect((await refund(colleague, id, { amount_cents: 100 })).status).toBe(201);
    // An admin refunds from a POS session of another event: admins may use any.
    const admin = await posSessionFor((await operatorToken(["admin"])).token, "evt-admin-desk");
    expect((await refund(admin, id)).body).toMatchObject({ amount_cents: 400, reversal_of: id });

    const purchase = (await storedWallet(userId)).ledger.find((row) => row.type === "PURCHASE");
    expect((await refund(admin, purchase?.id ?? "")).status).toBe(404);
    expect((await refund(admin, "txn_doesnotexist")).status).toBe(404);
    const gate = await operatorToken(["gate"]);
    expect(await refund({ token: gate.token, sessionId: "ses_nope" }, id)).toMatchObject({
      status: 403,
      body: { code: "forbidden" },
    });
  });
});

describe("POST /pos/deductions: decided by the wallet's object", () => {
  it("a till refunding the sale it just made finds it, though the ledger had not seen it yet", async ({
    expect,
  }) => {
    const { userId, token } = await fundedWallet(2_000);
    const till = await posTill();
    // A first deduction, flushed at once (the wallet was quiet): the wallet's next flush then waits for
    // the window, which is longer than everything below until the refund.
    const first = await deduct(till, await walletQr(token), 100);
    const flushed = await eventually(async () => {
      const ids = (await storedWallet(userId, { waitForCopy: false })).ledger.map((row) => row.id);
      return ids.includes(first.body.transaction_id) || undefined;
    });
    expect(flushed).toBe(true);
    const sale = await deduct(till, await walletQr(token), 400);
    expect(sale.status).toBe(201);
    const inD1 = (await storedWallet(userId, { waitForCopy: false })).ledger.map((row) => row.id);
    expect(inD1).not.toContain(sale.body.transaction_id);
    const refunded = await refund(till, sale.body.transaction_id, { amount_cents: 400 });
    expect(refunded).toMatchObject({ status: 201, body: { reversal_of: sale.body.transaction_id } });
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 1_900, ledgerSumCents: 1_900 });
  });

  it("a retry after the token expired still gets its stored answer; a new request with it is token_expired", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const till = await posTill();
    // Issued 88 s ago with a 90 s life: valid now, expired in two seconds.
    const aging = await signWalletQrToken(
      qrSigningConfig(loadConfig(env)),
      userId,
      new Date(Date.now() - 88_000),
    );
    const key = crypto.randomUUID();
    const first = await deduct(till, aging.token, 250, { key });
    expect(first.status).toBe(201);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const retry = await deduct(till, aging.token, 250, { key });
    expect(retry).toMatchObject({ status: 201, body: first.body });
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect((await deduct(till, aging.token, 250)).body.code).toBe("token_expired");
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 750, ledgerSumCents: 750 });
  });

  it("an Idempotency-Key is held per wallet: the same key at another customer's wallet is that customer's deduction", async ({
    expect,
  }) => {
    const alice = await fundedWallet(1_000);
    const bob = await fundedWallet(1_000);
    const till = await posTill();
    const key = crypto.randomUUID();
    expect((await deduct(till, await walletQr(alice.token), 300, { key })).status).toBe(201);
    expect((await deduct(till, await walletQr(bob.token), 300, { key })).status).toBe(201);
    // At the same wallet, the key still means the first request: another token is another request.
    expect((await deduct(till, await walletQr(alice.token), 300, { key })).body.code).toBe(
      "idempotency_key_reused",
    );
    expect(await storedWallet(alice.userId)).toMatchObject({ balanceCents: 700 });
    expect(await storedWallet(bob.userId)).toMatchObject({ balanceCents: 700 });
  });

  it("a buyer sees a deduction in the history the moment the till was told", async ({ expect }) => {
    const { token } = await fundedWallet(1_000);
    const till = await posTill();
    await deduct(till, await walletQr(token), 100);
    const sale = await deduct(till, await walletQr(token), 200);
    const history = await callJson<{ transactions: { id: string }[] }>("GET", "/wallet/transactions", {
      token,
    });
    expect(history.body.transactions.map((t) => t.id)).toContain(sale.body.transaction_id);
    expect(await walletOf(token)).toMatchObject({ balance_cents: 700 });
  });
});

describe("POS routes: roles", () => {
  // The role is checked before the body, the session or the deduction is looked at. Were it missing, a
  // session id that does not exist would still be refused (session_invalid, or not_found for a refund):
  // only the code tells the two apart.
  const requests = {
    "POST /pos/wallet-lookup": (token: string, qr: string) =>
      callJson<Problem>("POST", "/pos/wallet-lookup", {
        token,
        body: { qr_token: qr, session_id: "ses_nope" },
      }),
    "POST /pos/deductions": (token: string, qr: string) =>
      callJson<Problem>("POST", "/pos/deductions", {
        token,
        idempotencyKey: crypto.randomUUID(),
        body: { qr_token: qr, amount_cents: 100, session_id: "ses_nope" },
      }),
    "POST /pos/deductions/{id}/refund": (token: string) =>
      callJson<Problem>("POST", "/pos/deductions/txn_doesnotexist/refund", {
        token,
        idempotencyKey: crypto.randomUUID(),
        body: { reason: "test refund", session_id: "ses_nope" },
      }),
  };
  const cases = (Object.keys(requests) as (keyof typeof requests)[]).flatMap((route) =>
    (["gate", "analyst"] satisfies OperatorRole[]).map((role) => [route, role] as const),
  );

  it.for(cases)("%s: an operator with role %s is forbidden", async ([route, role], { expect }) => {
    const { token } = await fundedWallet(0);
    const operator = await operatorToken([role]);
    const refused = await requests[route](operator.token, await walletQr(token));
    expect(refused).toMatchObject({ status: 403, body: { code: "forbidden" } });
  });
});
