import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import type { RedeemRequest, TicketObject } from "../../src/objects/ticket";
import { paidTicket } from "../support/tickets";

const session = { sessionId: "ses_t", operatorId: "opr_t", deviceId: "dev-t", locationId: "loc-t" };

function request(code: string, overrides: Partial<RedeemRequest> = {}): RedeemRequest {
  return {
    ticketCode: code,
    scanId: crypto.randomUUID(),
    fn: "bus",
    jti: crypto.randomUUID(),
    tokenExpiresAt: Math.floor(Date.now() / 1000) + 30,
    session,
    ...overrides,
  };
}

const stubFor = (code: string) => env.TICKETS.get(env.TICKETS.idFromName(code));

describe("TicketObject.redeem", () => {
  it("is idempotent on scan_id: a retried RPC spends once and answers the same", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const stub = stubFor(ticket.code);
    const once = request(ticket.code);
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
    expect(await stub.redeem(request(ticket.code, { jti }))).toMatchObject({ result: "accepted" });
    await evictDurableObject(stub);
    expect(await stub.redeem(request(ticket.code))).toMatchObject({ result: "accepted" });
    await evictDurableObject(stub);
    expect(await stub.redeem(request(ticket.code, { jti }))).toMatchObject({ code: "token_replayed" });
    expect((await stub.snapshot())?.entitlements[0]?.remaining_uses).toBe(1);
  });

  it("the alarm forwards the outbox and prunes expired jtis; a pruned jti's token is refused as expired", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const stub = stubFor(ticket.code);
    // At least a second ahead (Unix seconds round down), so a busy machine cannot expire it in flight.
    const shortLived = { jti: crypto.randomUUID(), tokenExpiresAt: Math.ceil(Date.now() / 1000) + 1 };
    expect(await stub.redeem(request(ticket.code, shortLived))).toMatchObject({ result: "accepted" });
    await runInDurableObject(stub, (_instance: TicketObject, state) => {
      const outbox = state.storage.sql.exec("SELECT COUNT(*) AS n FROM outbox").one();
      expect(outbox.n).toBe(1);
    });
    await new Promise((resolve) => setTimeout(resolve, shortLived.tokenExpiresAt * 1000 - Date.now() + 100));
    await runDurableObjectAlarm(stub);
    await runInDurableObject(stub, (_instance: TicketObject, state) => {
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM outbox").one().n).toBe(0);
      expect(state.storage.sql.exec("SELECT COUNT(*) AS n FROM spent_jtis").one().n).toBe(0);
    });
    expect(await stub.redeem(request(ticket.code, shortLived))).toMatchObject({ code: "token_expired" });
    expect((await stub.snapshot())?.entitlements[0]?.remaining_uses).toBe(4);
  });

  it("refuses a code that was never issued", async ({ expect }) => {
    expect(await stubFor("NOSUCHTICKET0").redeem(request("NOSUCHTICKET0"))).toEqual({
      result: "rejected",
      code: "ticket_not_found",
    });
  });
});
