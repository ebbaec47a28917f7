import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import type { PosDeductionRequest, WalletObject } from "../../src/objects/wallet";
import { fundedWallet, storedWallet } from "../support/wallet";

const stubFor = (userId: string) => env.WALLETS.get(env.WALLETS.idFromName(userId));

function request(userId: string, overrides: Partial<PosDeductionRequest> = {}): PosDeductionRequest {
  return {
    userId,
    ledgerKey: `pos.deduct:opr_test:${crypto.randomUUID()}`,
    amountCents: 100,
    currency: "EUR",
    reference: null,
    jti: crypto.randomUUID(),
    tokenExpiresAt: Math.floor(Date.now() / 1000) + 90,
    operatorId: "opr_test",
    sessionId: "ses_test",
    deviceId: "dev-test",
    eventId: "evt-test",
    ...overrides,
  };
}

describe("WalletObject.deduct", () => {
  it("a retried RPC answers exactly the first time's result and posts once", async ({ expect }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const once = request(userId);
    const first = await stub.deduct(once);
    const again = await stub.deduct(once);
    expect(first).toMatchObject({ ok: true, balanceCents: 900 });
    expect(again).toEqual(first);
    expect((await storedWallet(userId)).ledger.filter((row) => row.type === "DEDUCT")).toHaveLength(1);
  });

  it("with its local memory of the result gone, a retry finds the ledger row in D1 and answers with it", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const once = request(userId);
    const first = await stub.deduct(once);
    await runInDurableObject(stub, (_instance: WalletObject, state) => {
      state.storage.sql.exec("DELETE FROM operations");
    });
    const again = await stub.deduct(once);
    expect(again).toMatchObject({ ok: true, transaction: (first as { transaction: unknown }).transaction });
    // The D1 UNIQUE on (user_id, idempotency_key) is the final guard even with the jti forgotten too.
    await runInDurableObject(stub, (_instance: WalletObject, state) => {
      state.storage.sql.exec("DELETE FROM operations");
      state.storage.sql.exec("DELETE FROM spent_jtis");
    });
    expect(await stub.deduct(once)).toMatchObject({
      ok: true,
      transaction: { id: (first as { transaction: { id: string } }).transaction.id },
    });
    expect(await storedWallet(userId)).toMatchObject({ balanceCents: 900, ledgerSumCents: 900 });
  });

  it("a spent jti is refused under another key; an expired one is refused before the jti is looked at", async ({
    expect,
  }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const jti = crypto.randomUUID();
    expect(await stub.deduct(request(userId, { jti }))).toMatchObject({ ok: true });
    expect(await stub.deduct(request(userId, { jti }))).toEqual({ ok: false, code: "token_replayed" });
    const lapsed = request(userId, { tokenExpiresAt: Math.floor(Date.now() / 1000) - 1 });
    expect(await stub.deduct(lapsed)).toEqual({ ok: false, code: "token_expired" });
  });

  it("the alarm forgets jtis once their tokens have expired", async ({ expect }) => {
    const { userId } = await fundedWallet(1_000);
    const stub = stubFor(userId);
    const shortLived = request(userId, { tokenExpiresAt: Math.floor(Date.now() / 1000) + 1 });
    expect(await stub.deduct(shortLived)).toMatchObject({ ok: true });
    const count = () =>
      runInDurableObject(stub, (_instance: WalletObject, state) =>
        Number(state.storage.sql.exec("SELECT COUNT(*) AS n FROM spent_jtis").one().n),
      );
    expect(await count()).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await runDurableObjectAlarm(stub);
    expect(await count()).toBe(0);
    // A replay of that token now fails on its expiry, never on a forgotten jti.
    expect(await stub.deduct({ ...shortLived, ledgerKey: "pos.deduct:opr_test:other" })).toEqual({
      ok: false,
      code: "token_expired",
    });
  });
});
