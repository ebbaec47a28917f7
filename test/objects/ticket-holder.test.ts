import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import type { Env } from "../../src/env";
import type { TicketObject } from "../../src/objects/ticket";
import { type HeldCount, HOLDER_COUNT_RETENTION_MS } from "../../src/objects/ticket-holder";
import { callJson } from "../support/http";
import { gateSession, paidTicket, paidTickets, qrToken, redeemRequest, scan } from "../support/tickets";

// The buyer's holder object is a versioned cache of what the ticket objects own: it must never show an
// older count than one it has been given, whatever order pushes come in, and a ticket object whose push
// failed must catch it up without the gate waiting for it.

const holderOf = (userId: string) => env.TICKET_HOLDERS.get(env.TICKET_HOLDERS.idFromName(userId));
const ticketStub = (code: string) => env.TICKETS.get(env.TICKETS.idFromName(code));
const count = (version: number, remainingUses: number): HeldCount => ({
  ticketCode: "TCKT",
  function: "bus",
  totalUses: 10,
  remainingUses,
  version,
});

describe("TicketHolderObject", () => {
  it("keeps the newest version of each count, whatever order and however often pushes arrive", async ({
    expect,
  }) => {
    const holder = holderOf(`holder-${crypto.randomUUID()}`);
    // Pushes of versions 1..6 (a scan each, then an annulment at 6), delivered shuffled and twice.
    const pushes = [count(3, 7), count(1, 9), count(6, 6), count(2, 8), count(5, 5), count(4, 6)];
    await Promise.all([...pushes, ...pushes.reverse()].map((push) => holder.record([push])));
    expect(await holder.counts()).toEqual([count(6, 6)]);
    await holder.record([count(5, 5)]);
    expect(await holder.counts()).toEqual([count(6, 6)]);
  });

  it("forgets counts once the read model has long caught up", async ({ expect }) => {
    const holder = holderOf(`holder-${crypto.randomUUID()}`);
    await holder.record([count(1, 9)]);
    await runInDurableObject(holder, (_instance, state) => {
      state.storage.sql.exec(
        "UPDATE counts SET pushed_at_ms = ?",
        Date.now() - HOLDER_COUNT_RETENTION_MS - 1,
      );
    });
    expect(await runDurableObjectAlarm(holder)).toBe(true);
    expect(await holder.counts()).toEqual([]);
  });
});

describe("a ticket object's push to its buyer's holder", () => {
  it("is in the holder when the scan's answer returns", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 4 }]);
    expect(await ticketStub(ticket.code).redeem(redeemRequest(ticket.code))).toMatchObject({
      result: "accepted",
    });
    expect(await holderOf(ticket.userId).counts()).toEqual([
      { ticketCode: ticket.code, function: "bus", totalUses: 4, remainingUses: 3, version: 1 },
    ]);
  });

  it("when the holder fails, the scan is still answered and the alarm pushes the counts later", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 4 }]);
    const stub = ticketStub(ticket.code);
    expect(await stub.redeem(redeemRequest(ticket.code))).toMatchObject({ result: "accepted" });
    const answered = await runInDurableObject(stub, async (instance: TicketObject) => {
      const withEnv = instance as unknown as { env: Env };
      const real = withEnv.env;
      const unreachable = {
        idFromName: (name: string) => real.TICKET_HOLDERS.idFromName(name),
        get: () => ({
          record: () => Promise.reject(new Error("holder unreachable")),
        }),
      } as unknown as Env["TICKET_HOLDERS"];
      withEnv.env = { ...real, TICKET_HOLDERS: unreachable };
      try {
        return await instance.redeem(redeemRequest(ticket.code));
      } finally {
        withEnv.env = real;
      }
    });
    expect(answered).toMatchObject({ result: "accepted" });
    // The holder has the first scan only; the second is owed.
    expect((await holderOf(ticket.userId).counts())[0]).toMatchObject({ remainingUses: 3, version: 1 });
    // While it is owed, scans do not wait for the holder (one that is down costs one deadline, not one
    // per scan): the alarm catches it up with everything committed since.
    expect(await stub.redeem(redeemRequest(ticket.code))).toMatchObject({ result: "accepted" });
    expect((await holderOf(ticket.userId).counts())[0]).toMatchObject({ remainingUses: 3, version: 1 });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await holderOf(ticket.userId).counts())[0]).toMatchObject({ remainingUses: 1, version: 3 });
    // Caught up, the next scan is in the holder when it returns.
    expect(await stub.redeem(redeemRequest(ticket.code))).toMatchObject({ result: "accepted" });
    expect((await holderOf(ticket.userId).counts())[0]).toMatchObject({ remainingUses: 0, version: 4 });
    // Caught up: no longer marked behind.
    await runInDurableObject(stub, (_instance, state) => {
      const [row] = state.storage.sql
        .exec<{ behind: number }>("SELECT holder_behind AS behind FROM ticket")
        .toArray();
      expect(row?.behind).toBe(0);
    });
  });

  it("a ticket initialized before holders existed finds its buyer in D1 at its next change", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 4 }]);
    const stub = ticketStub(ticket.code);
    expect(await stub.redeem(redeemRequest(ticket.code))).toMatchObject({ result: "accepted" });
    // Rewrite the ticket row as the earlier layout had it: no buyer, no venue, no push mark.
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec(`
        CREATE TABLE ticket_old (code TEXT PRIMARY KEY, initialized_at INTEGER NOT NULL);
        INSERT INTO ticket_old SELECT code, initialized_at FROM ticket;
        DROP TABLE ticket;
        ALTER TABLE ticket_old RENAME TO ticket;
      `);
    });
    await evictDurableObject(stub);
    expect(await stub.redeem(redeemRequest(ticket.code))).toMatchObject({ result: "accepted" });
    expect((await holderOf(ticket.userId).counts())[0]).toMatchObject({ remainingUses: 2, version: 2 });
    await runInDurableObject(stub, (_instance, state) => {
      const [row] = state.storage.sql.exec<{ owner_id: string }>("SELECT owner_id FROM ticket").toArray();
      expect(row?.owner_id).toBe(ticket.userId);
    });
  });
});

describe("GET /my/tickets against racing scans", () => {
  it("shows every scan that has returned, across a buyer's tickets scanned in parallel", async ({
    expect,
  }) => {
    const tickets = await paidTickets([{ function: "bus", uses: 6 }], 4);
    const [first] = tickets;
    if (!first) throw new Error("no tickets");
    const gate = await gateSession();
    // Up to 8 gates at once per ticket for its last 6 uses: some are refused as exhausted.
    const answers = await Promise.all(
      tickets.flatMap((ticket, i) =>
        Array.from({ length: i * 2 + 2 }, async () => scan(gate, await qrToken(ticket), "bus")),
      ),
    );
    expect(answers.every((answer) => answer.status === 200 || answer.status === 409)).toBe(true);
    // Every answer has returned: the list must agree with each ticket's object, D1's lag or not.
    const mine = await callJson<{ tickets: { code: string; entitlements: { remaining_uses: number }[] }[] }>(
      "GET",
      "/my/tickets",
      { token: first.buyerToken },
    );
    for (const ticket of tickets) {
      const truth = (await ticketStub(ticket.code).snapshot())?.entitlements[0]?.remaining_uses;
      const listed = mine.body.tickets.find((t) => t.code === ticket.code)?.entitlements[0]?.remaining_uses;
      expect(listed).toBe(truth);
    }
    const accepted = answers.filter((answer) => answer.status === 200).length;
    expect(accepted).toBe(2 + 4 + 6 + 6);
  });
});
