import { createMessageBatch, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq, inArray } from "drizzle-orm";
import { describe, it } from "vitest";
import { verifyAuditChain } from "../../src/db/audit";
import { auditLog, redemptionAnnulments, redemptions, ticketEntitlements } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import { createMailer } from "../../src/mail/create-mailer";
import type { AnnulRequest, TicketObject } from "../../src/objects/ticket";
import { consumeEvents } from "../../src/queues/consumer";
import type { OperatorRole } from "../../src/types/domain";
import { eventually } from "../support/eventually";
import { db, operatorToken } from "../support/fixtures";
import { call, callJson } from "../support/http";
import { openSession, registeredDevice } from "../support/staff";
import {
  gateSession,
  OBJECT_SCAN_SESSION,
  type PaidTicket,
  paidTicket,
  qrToken,
  redeemRequest,
  scan,
} from "../support/tickets";

// POST /redemptions/{redemption_id}/annul gives a scan's use back (CONTRACT Part 2, "Scans: retries after
// a lost answer, and undo"), and the read side follows: reports, the CSV, the audit log, the read model.

/** The contract's default ANNUL_WINDOW_SECONDS; the test environment does not set it. */
const ANNUL_WINDOW_SECONDS = 900;

interface Staff {
  token: string;
  operatorId: string;
  sessionId: string;
  deviceId: string;
}

interface Annulled {
  code?: string;
  redemption_id?: string;
  annulled_at?: string;
  ticket_code?: string;
  function?: string;
  entitlements?: { function: string; total_uses: number; remaining_uses: number }[];
  errors?: { path: string; message: string }[];
}

function annul(staff: { token: string; sessionId: string }, redemptionId: string, reason?: string) {
  return callJson<Annulled>("POST", `/redemptions/${encodeURIComponent(redemptionId)}/annul`, {
    token: staff.token,
    body: reason === undefined ? { session_id: staff.sessionId } : { session_id: staff.sessionId, reason },
  });
}

/** An operator with `roles` and an open session on a fresh gate device. */
async function staffSession(roles: OperatorRole[]): Promise<Staff> {
  const operator = await operatorToken(roles);
  return { ...operator, ...(await sessionOnNewDevice(operator.token)) };
}

/** The same operator on another gate device: a second open session. */
async function sessionOnNewDevice(token: string): Promise<{ sessionId: string; deviceId: string }> {
  const deviceId = await registeredDevice({ kind: "gate", location_id: "loc-test" });
  const session = await openSession(token, { device_id: deviceId });
  if (session.status !== 201) throw new Error(`session failed: ${session.status}`);
  return { sessionId: session.body.session_id, deviceId };
}

async function acceptedScan(gate: Staff, ticket: PaidTicket, fn: string): Promise<string> {
  const response = await scan(gate, await qrToken(ticket), fn);
  if (response.status !== 200 || !response.body.redemption_id) {
    throw new Error(`scan not accepted: ${response.status} ${response.body.code}`);
  }
  return response.body.redemption_id;
}

const stubFor = (code: string) => env.TICKETS.get(env.TICKETS.idFromName(code));

async function remainingUses(code: string, fn: string): Promise<number | undefined> {
  const snapshot = await stubFor(code).snapshot();
  return snapshot?.entitlements.find((e) => e.function === fn)?.remaining_uses;
}

/** Moves a scan back in time inside its ticket's object, as if it had been made `seconds` ago. */
function ageScan(code: string, redemptionId: string, seconds: number) {
  return runInDurableObject(stubFor(code), (_instance: TicketObject, state) => {
    state.storage.sql.exec(
      "UPDATE redemptions SET scanned_at_ms = ? WHERE id = ?",
      Date.now() - seconds * 1000,
      redemptionId,
    );
  });
}

describe("POST /redemptions/{id}/annul: the use comes back", () => {
  it("gives exactly one use back, shown at once, and the ticket can be scanned for it", async ({
    expect,
  }) => {
    const ticket = await paidTicket([
      { function: "bus", uses: 3 },
      { function: "ferry", uses: 1 },
    ]);
    const gate = await gateSession();
    const redemptionId = await acceptedScan(gate, ticket, "bus");
    await acceptedScan(gate, ticket, "bus");
    expect(await remainingUses(ticket.code, "bus")).toBe(1);

    const before = Date.now();
    const annulled = await annul(gate, redemptionId);
    expect(annulled.status).toBe(200);
    expect(annulled.body).toEqual({
      redemption_id: redemptionId,
      annulled_at: expect.any(String),
      ticket_code: ticket.code,
      function: "bus",
      entitlements: [
        { function: "bus", total_uses: 3, remaining_uses: 2 },
        { function: "ferry", total_uses: 1, remaining_uses: 1 },
      ],
    });
    expect(Date.parse(annulled.body.annulled_at ?? "")).toBeGreaterThanOrEqual(before - 1_000);

    const mine = await callJson<{ tickets: { code: string; entitlements: unknown[] }[] }>(
      "GET",
      "/my/tickets",
      { token: ticket.buyerToken },
    );
    expect(mine.body.tickets.find((t) => t.code === ticket.code)?.entitlements).toEqual([
      { function: "bus", total_uses: 3, remaining_uses: 2 },
      { function: "ferry", total_uses: 1, remaining_uses: 1 },
    ]);
    // The use is spendable again, and only the one.
    await acceptedScan(gate, ticket, "bus");
    await acceptedScan(gate, ticket, "bus");
    const empty = await scan(gate, await qrToken(ticket), "bus");
    expect(empty).toMatchObject({ status: 409, body: { code: "exhausted" } });
  });

  it("a used-up ticket shows its use back in /my/tickets as soon as the annulment returns", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "museum", uses: 1 }]);
    const gate = await gateSession();
    const redemptionId = await acceptedScan(gate, ticket, "museum");
    // Let the read model learn the ticket is used up, as it will a moment after any last scan.
    await eventually(
      () => db().select().from(ticketEntitlements).where(eq(ticketEntitlements.ticketCode, ticket.code)),
      (rows) => rows[0]?.remainingUses === 0,
    );
    expect((await annul(gate, redemptionId)).status).toBe(200);
    const mine = await callJson<{ tickets: { code: string; status: string; entitlements: unknown[] }[] }>(
      "GET",
      "/my/tickets",
      { token: ticket.buyerToken },
    );
    expect(mine.body.tickets.find((t) => t.code === ticket.code)).toMatchObject({
      status: "ACTIVE",
      entitlements: [{ function: "museum", total_uses: 1, remaining_uses: 1 }],
    });
  });

  it("a second annulment is 409 already_annulled and gives nothing more", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "museum", uses: 2 }]);
    const gate = await gateSession();
    const redemptionId = await acceptedScan(gate, ticket, "museum");
    await acceptedScan(gate, ticket, "museum");
    expect((await annul(gate, redemptionId)).status).toBe(200);
    const again = await annul(gate, redemptionId);
    expect(again).toMatchObject({ status: 409, body: { code: "already_annulled" } });
    expect(await remainingUses(ticket.code, "museum")).toBe(1);
  });

  it("10 parallel annulments of one scan: one 200, nine already_annulled, one use back", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const redemptionId = await acceptedScan(gate, ticket, "bus");
    await acceptedScan(gate, ticket, "bus");
    const results = await Promise.all(Array.from({ length: 10 }, () => annul(gate, redemptionId)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    const refused = results.filter((r) => r.status === 409);
    expect(refused).toHaveLength(9);
    for (const r of refused) expect(r.body.code).toBe("already_annulled");
    expect(await remainingUses(ticket.code, "bus")).toBe(4);
  });
});

describe("POST /redemptions/{id}/annul: who may, and when", () => {
  it("another device's session is 403 annul_not_allowed, the same operator's or another's", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await staffSession(["gate"]);
    const redemptionId = await acceptedScan(gate, ticket, "bus");
    const sameOperatorElsewhere = { token: gate.token, ...(await sessionOnNewDevice(gate.token)) };
    const otherOperator = await gateSession();
    for (const caller of [sameOperatorElsewhere, otherOperator]) {
      const refused = await annul(caller, redemptionId);
      expect(refused).toMatchObject({ status: 403, body: { code: "annul_not_allowed" } });
    }
    expect(await remainingUses(ticket.code, "bus")).toBe(4);
    // The scan itself could be annulled all along, from its own device.
    expect((await annul(gate, redemptionId)).status).toBe(200);
  });

  it("the scanning device may annul within the window, not after", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const inside = await acceptedScan(gate, ticket, "bus");
    const outside = await acceptedScan(gate, ticket, "bus");
    await ageScan(ticket.code, inside, ANNUL_WINDOW_SECONDS - 10);
    await ageScan(ticket.code, outside, ANNUL_WINDOW_SECONDS + 10);
    const late = await annul(gate, outside);
    expect(late).toMatchObject({ status: 403, body: { code: "annul_not_allowed" } });
    // A reason does not open the window for a gate without the supervisor role.
    const lateWithReason = await annul(gate, outside, "Scanned twice by mistake");
    expect(lateWithReason).toMatchObject({ status: 403, body: { code: "annul_not_allowed" } });
    expect((await annul(gate, inside)).status).toBe(200);
    expect(await remainingUses(ticket.code, "bus")).toBe(4);
  });

  it("a supervisor may annul any scan at any time, with a reason", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const old = await acceptedScan(gate, ticket, "bus");
    const recent = await acceptedScan(gate, ticket, "bus");
    await ageScan(ticket.code, old, 3 * 24 * 60 * 60);
    const supervisor = await staffSession(["gate", "supervisor"]);

    for (const id of [old, recent]) {
      const withoutReason = await annul(supervisor, id);
      expect(withoutReason).toMatchObject({ status: 400, body: { code: "validation_failed" } });
      expect(withoutReason.body.errors?.map((e) => e.path)).toEqual(["reason"]);
    }
    const blankReason = await annul(supervisor, old, "   ");
    expect(blankReason).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    expect(blankReason.body.errors?.map((e) => e.path)).toEqual(["reason"]);
    const tooLong = await annul(supervisor, old, "x".repeat(201));
    expect(tooLong).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    expect(await remainingUses(ticket.code, "bus")).toBe(3);

    const withReason = await annul(supervisor, old, "Wrong ticket scanned");
    expect(withReason).toMatchObject({ status: 200, body: { redemption_id: old, function: "bus" } });
    expect((await annul(supervisor, recent, "x".repeat(200))).status).toBe(200);
    expect(await remainingUses(ticket.code, "bus")).toBe(5);
  });

  it("unknown and garbage ids are 404 not_found", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const real = await acceptedScan(gate, ticket, "bus");
    const otherTicket = await paidTicket([{ function: "bus", uses: 5 }]);
    const unknown = [
      "x",
      "red_",
      "red_nope",
      // This ticket's symbols with a random part it never minted.
      `${real.slice(0, -12)}000000000000`,
      // Another ticket's symbols: issued, but its object has no such scan.
      `red_${otherTicket.code.slice(0, 13).toLowerCase()}${real.slice(-12)}`,
      // The shape of an id naming a ticket that was never issued.
      `red_${"0".repeat(13)}${real.slice(-12)}`,
      // Symbols outside the alphabet.
      `red_${"u".repeat(13)}${real.slice(-12)}`,
      // The old shape (20 random symbols), not in the read model.
      `red_${"a".repeat(20)}`,
    ];
    for (const id of unknown) {
      const response = await annul(gate, id);
      expect({ id, status: response.status, code: response.body.code }).toEqual({
        id,
        status: 404,
        code: "not_found",
      });
    }
    expect(await remainingUses(ticket.code, "bus")).toBe(4);
  });

  it("an id of the old shape is found through the redemptions read model", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    await acceptedScan(gate, ticket, "bus");
    // A scan recorded before ids named their ticket: `red_` and 20 random symbols, known to D1.
    const oldId = `red_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
    await db().insert(redemptions).values({
      id: oldId,
      ticketCode: ticket.code,
      function: "bus",
      operatorId: gate.operatorId,
      sessionId: gate.sessionId,
      deviceId: gate.deviceId,
      locationId: "loc-test",
      ts: new Date().toISOString(),
    });
    const supervisor = await staffSession(["gate", "supervisor"]);
    const annulled = await annul(supervisor, oldId, "Recorded before the upgrade");
    expect({ status: annulled.status, code: annulled.body.code }).toEqual({ status: 200, code: undefined });
    expect(annulled.body).toMatchObject({ redemption_id: oldId, ticket_code: ticket.code, function: "bus" });
  });

  it("without role gate is 403 forbidden; a closed or foreign session is 403 session_invalid", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const redemptionId = await acceptedScan(gate, ticket, "bus");

    for (const role of ["pos", "analyst"] as const) {
      const outsider = await operatorToken([role], ["evt"]);
      const refused = await annul({ token: outsider.token, sessionId: gate.sessionId }, redemptionId);
      expect(refused).toMatchObject({ status: 403, body: { code: "forbidden" } });
    }
    const anonymous = await callJson<Annulled>("POST", `/redemptions/${redemptionId}/annul`, {
      body: { session_id: gate.sessionId },
    });
    expect(anonymous).toMatchObject({ status: 401, body: { code: "unauthenticated" } });

    const other = await gateSession();
    const foreign = await annul({ token: other.token, sessionId: gate.sessionId }, redemptionId);
    expect(foreign).toMatchObject({ status: 403, body: { code: "session_invalid" } });

    const closed = await callJson("DELETE", `/validators/sessions/${gate.sessionId}`, { token: gate.token });
    expect(closed.status).toBeLessThan(300);
    const afterClose = await annul(gate, redemptionId);
    expect(afterClose).toMatchObject({ status: 403, body: { code: "session_invalid" } });
    expect(await remainingUses(ticket.code, "bus")).toBe(4);
  });
});

interface Report {
  rows: { day: string; function: string; location_id: string | null; redemptions: number }[];
  total: number;
}

describe("annulments on the read side, through the real outbox and queue", () => {
  it("within 10 s reports exclude the annulled scan, the CSV shows annulled_at, the audit log has it", async ({
    expect,
  }) => {
    const location = `loc-${crypto.randomUUID().slice(0, 8)}`;
    const ticket = await paidTicket([{ function: "bus", uses: 3 }]);
    const gate = await gateSession({ location });
    const annulledId = await acceptedScan(gate, ticket, "bus");
    const standingId = await acceptedScan(gate, ticket, "bus");

    const analyst = await operatorToken(["analyst"]);
    const today = new Date().toISOString().slice(0, 10);
    const range = `from=${today}&to=${today}&location_id=${location}`;
    const report = () =>
      callJson<Report>("GET", `/reports/redemptions?${range}`, { token: analyst.token }).then((r) => r.body);
    expect((await eventually(report, (body) => body.total >= 2)).total).toBe(2);

    const annulled = await annul(gate, annulledId);
    expect(annulled.status).toBe(200);
    const annulledAt = Date.now();
    const after = await eventually(report, (body) => body.total < 2);
    expect(Date.now() - annulledAt).toBeLessThan(10_000);
    expect(after).toMatchObject({
      total: 1,
      rows: [{ day: today, function: "bus", location_id: location, redemptions: 1 }],
    });

    const csv = await call("GET", `/reports/redemptions?${range}`, {
      token: analyst.token,
      headers: { accept: "text/csv" },
    });
    const [header, ...lines] = (await csv.text()).trim().split("\r\n");
    const columns = header?.split(",") ?? [];
    expect(columns).toContain("annulled_at");
    const annulledAtOf = (id: string) =>
      lines.map((line) => line.split(",")).find((fields) => fields[0] === id)?.[
        columns.indexOf("annulled_at")
      ];
    expect(lines).toHaveLength(2);
    expect(annulledAtOf(annulledId)).toBe(annulled.body.annulled_at);
    expect(annulledAtOf(standingId)).toBe("");

    const [entry] = await db()
      .select()
      .from(auditLog)
      .where(eq(auditLog.id, `aud_annul_${annulledId}`));
    expect(entry).toMatchObject({
      action: "ticket.scan_annulled",
      actor: gate.operatorId,
      target: ticket.code,
    });
    expect(JSON.parse(entry?.details ?? "{}")).toMatchObject({
      redemption_id: annulledId,
      function: "bus",
      device_id: gate.deviceId,
      session_id: gate.sessionId,
    });
    const [readModel] = await db()
      .select()
      .from(ticketEntitlements)
      .where(eq(ticketEntitlements.ticketCode, ticket.code));
    expect(readModel).toMatchObject({ remainingUses: 2, usesVersion: 3 });
  });
});

// The consumer, fed by hand: each event delivered alone, in any order, as the queue may.

let seq = 0;
const deliver = (bodies: unknown[]) =>
  consumeEvents(
    createMessageBatch(
      "passes-events",
      bodies.map((body) => ({ id: `a-${++seq}`, timestamp: new Date(), attempts: 1, body })),
    ),
    { db: db(), mailer: createMailer(loadConfig(env), db()) },
  );

/**
 * Two scans and the annulment of the first, made by the ticket's real object, with the events its outbox
 * would have sent. The alarm is cancelled and the outbox emptied in the same call, so these events reach
 * the consumer only as the test delivers them.
 */
async function scansAndAnnulment(code: string) {
  return runInDurableObject(stubFor(code), async (instance: TicketObject, state) => {
    const first = await instance.redeem(redeemRequest(code));
    await instance.redeem(redeemRequest(code));
    if (first.result !== "accepted") throw new Error("scan refused");
    const annulRequest: AnnulRequest = {
      redemptionId: first.redemptionId,
      ticketCode: code,
      session: OBJECT_SCAN_SESSION,
      canOverride: false,
      reason: null,
      windowSeconds: ANNUL_WINDOW_SECONDS,
    };
    if ((await instance.annul(annulRequest)).result !== "annulled") throw new Error("annulment refused");
    await state.storage.deleteAlarm();
    const events = state.storage.sql
      .exec<{ payload: string }>("SELECT payload FROM outbox ORDER BY seq")
      .toArray()
      .map((row) => JSON.parse(row.payload) as { type: string; redemption_id: string; ts: string });
    state.storage.sql.exec("DELETE FROM outbox");
    return { events, redemptionIds: [first.redemptionId, events[1]?.redemption_id ?? ""] };
  });
}

async function readSide(code: string, redemptionIds: string[]) {
  const [rows, annulments, entitlements, audits] = await Promise.all([
    db().select().from(redemptions).where(inArray(redemptions.id, redemptionIds)),
    db().select().from(redemptionAnnulments).where(inArray(redemptionAnnulments.redemptionId, redemptionIds)),
    db().select().from(ticketEntitlements).where(eq(ticketEntitlements.ticketCode, code)),
    db()
      .select({ id: auditLog.id, action: auditLog.action })
      .from(auditLog)
      .where(eq(auditLog.target, code))
      .orderBy(auditLog.id),
  ]);
  // In the order the object made them (two scans may share a millisecond).
  rows.sort((a, b) => redemptionIds.indexOf(a.id) - redemptionIds.indexOf(b.id));
  return { rows, annulments, entitlements, audits };
}

const ORDERS: [string, number[]][] = [
  ["scan, scan, annulment", [0, 1, 2]],
  ["scan, annulment, scan", [0, 2, 1]],
  ["other scan, scan, annulment", [1, 0, 2]],
  ["other scan, annulment, scan", [1, 2, 0]],
  ["annulment, scan, other scan", [2, 0, 1]],
  ["annulment, other scan, scan", [2, 1, 0]],
];

describe("queue consumer: redemption.annulled", () => {
  it.for(ORDERS)(
    "delivered %s, one at a time: the read side ends at the object's state, and redelivery changes nothing",
    async ([, order], { expect }) => {
      const ticket = await paidTicket([{ function: "bus", uses: 3 }]);
      const { events, redemptionIds } = await scansAndAnnulment(ticket.code);
      expect(events.map((e) => e.type)).toEqual([
        "redemption.recorded",
        "redemption.recorded",
        "redemption.annulled",
      ]);
      const annulment = events[2];
      for (const index of order) await deliver([events[index]]);

      const settled = await readSide(ticket.code, redemptionIds);
      expect(settled.rows.map((row) => [row.id, row.annulledAt])).toEqual([
        [redemptionIds[0], annulment?.ts],
        [redemptionIds[1], null],
      ]);
      expect(settled.annulments).toHaveLength(1);
      // The object's state: 3 uses, two spent, one given back; three changes.
      expect(await remainingUses(ticket.code, "bus")).toBe(2);
      expect(settled.entitlements).toMatchObject([{ function: "bus", remainingUses: 2, usesVersion: 3 }]);
      expect(settled.audits.map((a) => a.action).sort()).toEqual([
        "ticket.scan",
        "ticket.scan",
        "ticket.scan_annulled",
      ]);

      // Each event again, alone and all together (the scans then go the grouped way).
      for (const event of events) await deliver([event]);
      await deliver(events);
      expect(await readSide(ticket.code, redemptionIds)).toEqual(settled);
      expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
    },
  );

  it("an annulment delivered before its scans, which then come grouped in one batch, inserts the scan annulled", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 3 }]);
    const { events, redemptionIds } = await scansAndAnnulment(ticket.code);
    await deliver([events[2]]);
    const early = await readSide(ticket.code, redemptionIds);
    expect(early.rows).toEqual([]);
    expect(early.annulments).toHaveLength(1);
    expect(early.entitlements).toMatchObject([{ remainingUses: 2, usesVersion: 3 }]);

    await deliver([events[0], events[1]]);
    const settled = await readSide(ticket.code, redemptionIds);
    expect(settled.rows.map((row) => [row.id, row.annulledAt])).toEqual([
      [redemptionIds[0], events[2]?.ts],
      [redemptionIds[1], null],
    ]);
    expect(settled.entitlements).toMatchObject([{ remainingUses: 2, usesVersion: 3 }]);
  });
});
