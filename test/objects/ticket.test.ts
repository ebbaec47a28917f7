import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { RESENT_SCAN_GRACE_MS, type TicketObject } from "../../src/objects/ticket";
import { paidTicket, redeemRequest } from "../support/tickets";

const stubFor = (code: string) => env.TICKETS.get(env.TICKETS.idFromName(code));

describe("TicketObject.redeem", () => {
  it("is idempotent on scan_id: a retried RPC spends once and answers the same", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const stub = stubFor(ticket.code);
    const once = redeemRequest(ticket.code);
    const first = await stub.redeem(once);
    const again = await stub.redeem(once);
    expect(again).toEqual(first);
    expect(first).toMatchObject({ result: "accepted" });
    expect((await stub.snapshot())?.entitlements).toEqual([
      { function: "bus", total_uses: 5, remaining_uses: 4 },
    ]);
  });

  it("keeps counts and spent jtis across eviction", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 3 }]);
    const stub = stubFor(ticket.code);
    const jti = crypto.randomUUID();
    expect(await stub.redeem(redeemRequest(ticket.code, { jti }))).toMatchObject({ result: "accepted" });
    await evictDurableObject(stub);
    expect(await stub.redeem(redeemRequest(ticket.code))).toMatchObject({ result: "accepted" });
    await evictDurableObject(stub);
    expect(await stub.redeem(redeemRequest(ticket.code, { jti }))).toMatchObject({ code: "token_replayed" });
    expect((await stub.snapshot())?.entitlements[0]?.remaining_uses).toBe(1);
  });

  it("the alarm forwards the outbox; a spent jti answers a resent scan past expiry, then is pruned", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const stub = stubFor(ticket.code);
    // At least a second ahead (Unix seconds round down), so a busy machine cannot expire it in flight.
    const shortLived = redeemRequest(ticket.code, { tokenExpiresAt: Math.ceil(Date.now() / 1000) + 1 });
    const accepted = await stub.redeem(shortLived);
    expect(accepted).toMatchObject({ result: "accepted" });
    await runInDurableObject(stub, (_instance: TicketObject, state) => {
      const outbox = state.storage.sql.exec("SELECT COUNT(*) AS n FROM outbox").one();
      expect(outbox.n).toBe(1);
    });
    await new Promise((resolve) => setTimeout(resolve, shortLived.tokenExpiresAt * 1000 - Date.now() + 100));
    await runDurableObjectAlarm(stub);
    await runInDurableObject(stub, (_instance: TicketObject, state) => {
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM outbox").one().n).toBe(0);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM spent_jtis").one().n).toBe(1);
    });
    // Expired, but the same scan resent: its answer, not a second use and not token_expired.
    expect(await stub.redeem(shortLived)).toEqual(accepted);

    // Once the grace has passed (moved here by rewinding the row), the next alarm prunes the jti.
    await runInDurableObject(stub, (_instance: TicketObject, state) => {
      state.storage.sql.exec("UPDATE spent_jtis SET expires_at_ms = expires_at_ms - ?", RESENT_SCAN_GRACE_MS);
    });
    await runDurableObjectAlarm(stub);
    await runInDurableObject(stub, (_instance: TicketObject, state) => {
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM spent_jtis").one().n).toBe(0);
    });
    expect(await stub.redeem(shortLived)).toMatchObject({ code: "token_expired" });
    expect(await stub.redeem({ ...shortLived, scanId: crypto.randomUUID() })).toMatchObject({
      code: "token_expired",
    });
    expect((await stub.snapshot())?.entitlements[0]?.remaining_uses).toBe(4);
  });

  it("a resent scan with another jti is a new scan, and another scan with a spent jti is a replay", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const stub = stubFor(ticket.code);
    const first = redeemRequest(ticket.code);
    expect(await stub.redeem(first)).toMatchObject({ result: "accepted" });
    expect(await stub.redeem({ ...first, scanId: crypto.randomUUID() })).toMatchObject({
      code: "token_replayed",
    });
    expect(await stub.redeem({ ...first, jti: crypto.randomUUID() })).toMatchObject({ result: "accepted" });
    expect((await stub.snapshot())?.entitlements[0]?.remaining_uses).toBe(3);
  });

  it("an object written by the earlier storage layout keeps refusing the jtis it had spent", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const stub = stubFor(ticket.code);
    const spent = redeemRequest(ticket.code);
    expect(await stub.redeem(redeemRequest(ticket.code))).toMatchObject({ result: "accepted" });
    // Rewrite storage as the earlier version left it: jtis alone, answers in a table of their own.
    await runInDurableObject(stub, (_instance: TicketObject, state) => {
      state.storage.sql.exec(`
        DROP TABLE spent_jtis;
        CREATE TABLE spent_jtis (jti TEXT PRIMARY KEY, expires_at_ms INTEGER NOT NULL);
        CREATE INDEX spent_jtis_by_expiry ON spent_jtis (expires_at_ms);
        CREATE TABLE scans (scan_id TEXT PRIMARY KEY, result TEXT NOT NULL, created_at_ms INTEGER NOT NULL);
      `);
      state.storage.sql.exec(
        "INSERT INTO spent_jtis (jti, expires_at_ms) VALUES (?, ?)",
        spent.jti,
        spent.tokenExpiresAt * 1000,
      );
    });
    await evictDurableObject(stub);
    expect(await stub.redeem(spent)).toMatchObject({ code: "token_replayed" });
    expect(await stub.redeem(redeemRequest(ticket.code))).toMatchObject({ result: "accepted" });
    await runInDurableObject(stub, (_instance: TicketObject, state) => {
      const tables = state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'scans'")
        .toArray();
      expect(tables).toEqual([]);
    });
    expect((await stub.snapshot())?.entitlements[0]?.remaining_uses).toBe(3);
  });

  it("refuses a code that was never issued", async ({ expect }) => {
    expect(await stubFor("NOSUCHTICKET0").redeem(redeemRequest("NOSUCHTICKET0"))).toEqual({
      result: "rejected",
      code: "ticket_not_found",
    });
  });
});
