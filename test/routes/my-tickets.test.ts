import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { callJson } from "../support/http";
import { gateSession, paidTickets, qrToken, scan } from "../support/tickets";

// The contract: `remaining_uses` reflects every scan that has returned, though D1's read model trails the
// ticket objects by seconds. Scans race for a buyer's tickets' last uses; once every answer is back, the
// list must say what each ticket's object says.

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
      const truth = (await env.TICKETS.get(env.TICKETS.idFromName(ticket.code)).snapshot())?.entitlements[0]
        ?.remaining_uses;
      const listed = mine.body.tickets.find((t) => t.code === ticket.code)?.entitlements[0]?.remaining_uses;
      expect(listed).toBe(truth);
    }
    const accepted = answers.filter((answer) => answer.status === 200).length;
    expect(accepted).toBe(2 + 4 + 6 + 6);
  });
});
