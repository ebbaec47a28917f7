import { env } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { describe, it } from "vitest";
import { signTicketQrToken } from "../../src/auth/qr-token";
import { verifyAuditChain } from "../../src/db/audit";
import { auditLog, redemptions, ticketEntitlements } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import { qrSigningConfig } from "../../src/http/refusals";
import { eventually } from "../support/eventually";
import { db, operatorToken } from "../support/fixtures";
import { call, callJson } from "../support/http";
import {
  currentSupplyToken,
  type Gate,
  offlineKit,
  offlineScan,
  qrSupply,
  uploadOffline,
} from "../support/offline";
import { openSession, registeredDevice } from "../support/staff";
import { gateSession, type PaidTicket, paidTicket, qrToken, scan } from "../support/tickets";

// Offline gates (CONTRACT Part 2, "Offline gates with a bounded risk"): the buyer's supply of codes, the
// gate's kit, and the reconciliation of what gates decided alone, through the real objects and queue.

const CONTRACT_SUPPLY_MS = 10 * 60 * 1000;

interface ConflictReport {
  conflicts: {
    outcome: string;
    reason: string;
    scan_id: string;
    ticket_code: string | null;
    device_id: string;
    scanned_at: string;
    over_budget: boolean;
    other_redemption_id: string | null;
    other_device_id: string | null;
    other_scanned_at: string | null;
  }[];
}

async function analyst() {
  return (await operatorToken(["analyst"])).token;
}

function conflictReport(token: string) {
  const from = new Date(Date.now() - 86_400_000).toISOString();
  const to = new Date(Date.now() + 86_400_000).toISOString();
  return callJson<ConflictReport>("GET", `/reports/offline-conflicts?from=${from}&to=${to}`, { token });
}

async function remaining(ticket: PaidTicket, fn: string): Promise<number | undefined> {
  const [row] = await db()
    .select({ remaining: ticketEntitlements.remainingUses })
    .from(ticketEntitlements)
    .where(and(eq(ticketEntitlements.ticketCode, ticket.code), eq(ticketEntitlements.function, fn)));
  return row?.remaining;
}

/** The ticket's own count, from its object (the truth, with no read model lag), or D1's if no scan reached it. */
async function liveUses(ticket: PaidTicket, fn: string): Promise<number | undefined> {
  const snapshot = await env.TICKETS.get(env.TICKETS.idFromName(ticket.code)).snapshot();
  if (!snapshot) return remaining(ticket, fn);
  return snapshot.entitlements.find((e) => e.function === fn)?.remaining_uses;
}

describe("POST /tickets/{code}/qr-tokens: a phone's supply for when the signal goes", () => {
  it("answers consecutive windows of at most 60 s covering 10 minutes, each its own jti and nbf", async ({
    expect,
  }) => {
    const ticket = await paidTicket([
      { function: "bus", uses: 2 },
      { function: "ferry", uses: 1 },
    ]);
    const before = Date.now();
    const supply = await qrSupply(ticket);
    expect(supply.status).toBe(200);
    const { tokens } = supply.body;
    const jtis = new Set<string>();
    for (const [index, entry] of tokens.entries()) {
      const from = Date.parse(entry.not_before);
      const until = Date.parse(entry.expires_at);
      expect(until - from).toBeGreaterThan(0);
      expect(until - from).toBeLessThanOrEqual(60_000);
      if (index > 0) expect(from).toBe(Date.parse(tokens[index - 1]?.expires_at ?? ""));
      const claims = decodeJwt(entry.token);
      expect(claims).toMatchObject({ sub: ticket.code, aud: "gate", fns: ["bus", "ferry"], used: [] });
      expect(claims.nbf).toBe(from / 1000);
      expect(claims.iat).toBe(from / 1000);
      expect(claims.exp).toBe(until / 1000);
      expect(decodeProtectedHeader(entry.token).typ).toBe("ticket-qr+jwt");
      jtis.add(String(claims.jti));
    }
    expect(jtis.size).toBe(tokens.length);
    const first = Date.parse(tokens[0]?.not_before ?? "");
    expect(first).toBeLessThanOrEqual(Date.now());
    expect(first).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1_000);
    expect(Date.parse(tokens.at(-1)?.expires_at ?? "") - first).toBeGreaterThanOrEqual(CONTRACT_SUPPLY_MS);
  });

  it("the current window's code scans online once; a later window's is not good yet", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const supply = (await qrSupply(ticket)).body.tokens;
    const current = supply[0]?.token ?? "";
    expect((await scan(gate, current, "bus")).status).toBe(200);
    expect(await scan(gate, current, "bus")).toMatchObject({ status: 409, body: { code: "token_replayed" } });
    const later = supply[5]?.token ?? "";
    expect(await scan(gate, later, "bus")).toMatchObject({ status: 422, body: { code: "token_invalid" } });
  });

  it("names the functions used up when it was signed, so a gate alone refuses them", async ({ expect }) => {
    const ticket = await paidTicket([
      { function: "bus", uses: 2 },
      { function: "museum", uses: 1 },
    ]);
    const gate = await gateSession();
    expect((await scan(gate, await qrToken(ticket), "museum")).status).toBe(200);
    const supply = await eventually(
      () => qrSupply(ticket),
      (answer) => (decodeJwt(answer.body.tokens[0]?.token ?? "").used as string[]).includes("museum"),
    );
    expect(decodeJwt(supply.body.tokens[0]?.token ?? "")).toMatchObject({
      fns: ["bus", "museum"],
      used: ["museum"],
    });
  });

  it("someone else's ticket answers like a missing one", async ({ expect }) => {
    const mine = await paidTicket([{ function: "bus", uses: 1 }]);
    const theirs = await paidTicket([{ function: "bus", uses: 1 }]);
    expect(await qrSupply(theirs, mine.buyerToken)).toMatchObject({
      status: 404,
      body: { code: "not_found" },
    });
    expect((await call("POST", `/tickets/${mine.code}/qr-tokens`)).status).toBe(401);
  });
});

describe("GET /devices/{id}/offline-kit", () => {
  it("carries the keys, the budget, and the tickets used up for the device's functions", async ({
    expect,
  }) => {
    const gate = await gateSession({ functions: ["bus"] });
    const usedUp = await paidTicket([
      { function: "bus", uses: 1 },
      { function: "ferry", uses: 1 },
    ]);
    const ferryOnly = await paidTicket([
      { function: "bus", uses: 2 },
      { function: "ferry", uses: 1 },
    ]);
    const all = await gateSession();
    expect((await scan(all, await qrToken(usedUp), "bus")).status).toBe(200);
    expect((await scan(all, await qrToken(ferryOnly), "ferry")).status).toBe(200);
    await eventually(
      () => remaining(ferryOnly, "ferry"),
      (left) => left === 0,
    );
    await eventually(
      () => remaining(usedUp, "bus"),
      (left) => left === 0,
    );

    const kit = await offlineKit(gate);
    expect(kit.status).toBe(200);
    const jwks = await callJson<{ keys: unknown[] }>("GET", "/.well-known/jwks.json");
    expect(kit.body).toMatchObject({
      functions: ["bus"],
      complete: true,
      budget: { max_offline_seconds: 1800, accepts_per_ticket_function: 1 },
      jwks: jwks.body,
      scarce: [],
    });
    expect(Date.parse(kit.body.valid_until) - Date.parse(kit.body.issued_at)).toBe(1_800_000);
    expect(kit.body.blocked).toContainEqual({ code: usedUp.code, functions: ["bus"] });
    // Used up only for a function this device does not validate: nothing for it to refuse.
    expect(kit.body.blocked.map((b) => b.code)).not.toContain(ferryOnly.code);

    // A delta from this kit on carries what changed since (and a little before: the overlap), not the past.
    const later = await paidTicket([{ function: "bus", uses: 1 }]);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const delta = await offlineKit(gate, { since: new Date(Date.now() + 31_000).toISOString() });
    expect(delta.body.blocked.map((b) => b.code)).not.toContain(usedUp.code);
    expect((await scan(all, await qrToken(later), "bus")).status).toBe(200);
    const fresh = await eventually(
      () => offlineKit(gate, { since: kit.body.issued_at }),
      (answer) => answer.body.blocked.some((b) => b.code === later.code),
    );
    expect(fresh.body.blocked).toContainEqual({ code: later.code, functions: ["bus"] });
  });

  it("needs gate staff with an open session on that very device", async ({ expect }) => {
    const gate = await gateSession();
    const other = await gateSession();
    const onOther = await offlineKit({ ...gate, sessionId: other.sessionId });
    expect(onOther).toMatchObject({ status: 403, body: { code: "session_invalid" } });
    const theirs = await offlineKit({ ...gate, deviceId: other.deviceId });
    expect(theirs).toMatchObject({ status: 403, body: { code: "session_invalid" } });
    const analystOnly = await offlineKit({ ...gate, token: await analyst() });
    expect(analystOnly).toMatchObject({ status: 403, body: { code: "forbidden" } });
    expect(
      (await call("GET", `/devices/${gate.deviceId}/offline-kit?session_id=${gate.sessionId}`)).status,
    ).toBe(401);
  });
});

describe("POST /devices/{id}/offline-scans: reconciliation", () => {
  it("applies an offline accept once, dated by the gate, counted once in the report and the CSV", async ({
    expect,
  }) => {
    const location = `loc-${crypto.randomUUID().slice(0, 8)}`;
    const ticket = await paidTicket([{ function: "bus", uses: 3 }]);
    const gate = await gateSession({ location });
    const scannedAt = new Date(Date.now() - 120_000);
    // A token good two minutes ago: the gate decided then, offline.
    const token = await windowTokenAt(ticket, ["bus"], scannedAt);
    const entry = await offlineScan(gate, token, "bus", { scannedAt });

    const first = await uploadOffline(gate, [entry]);
    expect(first.status).toBe(200);
    expect(first.body.results).toEqual([
      { scan_id: entry.scan_id, outcome: "applied", redemption_id: expect.any(String), remaining_uses: 2 },
    ]);
    const redemptionId = first.body.results[0]?.redemption_id ?? "";
    // The same upload again (its answer lost): nothing more is spent.
    const again = await uploadOffline(gate, [entry]);
    expect(again.body.results).toEqual([
      { scan_id: entry.scan_id, outcome: "duplicate", redemption_id: redemptionId, remaining_uses: 2 },
    ]);
    expect(await liveUses(ticket, "bus")).toBe(2);

    const row = await eventually(
      () => db().select().from(redemptions).where(eq(redemptions.id, redemptionId)),
      (rows) => rows.length === 1,
    );
    expect(row[0]).toMatchObject({ offline: true, ts: scannedAt.toISOString(), deviceId: gate.deviceId });
    const analystToken = await analyst();
    const day = scannedAt.toISOString().slice(0, 10);
    const report = await callJson<{ total: number }>(
      "GET",
      `/reports/redemptions?from=${day}&to=${day}&location_id=${location}`,
      { token: analystToken },
    );
    expect(report.body.total).toBe(1);
    const csv = await (
      await call("GET", `/reports/redemptions?from=${day}&to=${day}&location_id=${location}&format=csv`, {
        token: analystToken,
      })
    ).text();
    const lines = csv.trim().split("\r\n");
    expect(lines[0]).toContain(",offline");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(`${redemptionId},${scannedAt.toISOString()}`);
    expect(lines[1]?.endsWith(",true")).toBe(true);

    // The token is spent online too: showing it again at a connected gate is a replay.
    const online = await gateSession({ location });
    expect(await scan(online, token, "bus")).toMatchObject({
      body: { code: expect.stringMatching(/token_/) },
    });
  });

  it("two gates offline accept the last use: one applied, one conflict with both sides, never below zero", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "museum", uses: 1 }]);
    const north = await gateSession();
    const south = await gateSession();
    const token = await currentSupplyToken(ticket);
    // The same code (a screenshot) at two gates, a second apart.
    const atNorth = await offlineScan(north, token, "museum", { scannedAt: new Date(Date.now() - 2_000) });
    const atSouth = await offlineScan(south, token, "museum", { scannedAt: new Date(Date.now() - 1_000) });

    const [southResult, northResult] = [
      await uploadOffline(south, [atSouth]),
      await uploadOffline(north, [atNorth]),
    ];
    expect(southResult.body.results[0]).toMatchObject({ outcome: "applied", remaining_uses: 0 });
    expect(northResult.body.results[0]).toMatchObject({ outcome: "conflict", remaining_uses: 0 });
    expect(await liveUses(ticket, "museum")).toBe(0);

    const analystToken = await analyst();
    const report = await eventually(
      () => conflictReport(analystToken),
      (answer) => answer.body.conflicts.some((c) => c.scan_id === atNorth.scan_id),
    );
    const conflict = report.body.conflicts.find((c) => c.scan_id === atNorth.scan_id);
    expect(conflict).toMatchObject({
      outcome: "conflict",
      reason: "exhausted",
      ticket_code: ticket.code,
      device_id: north.deviceId,
      scanned_at: atNorth.scanned_at,
      other_redemption_id: southResult.body.results[0]?.redemption_id,
      other_device_id: south.deviceId,
      other_scanned_at: atSouth.scanned_at,
      over_budget: false,
    });
    const from = new Date(Date.now() - 86_400_000).toISOString();
    const to = new Date(Date.now() + 86_400_000).toISOString();
    const csv = await (
      await call("GET", `/reports/offline-conflicts?from=${from}&to=${to}&format=csv`, {
        token: analystToken,
      })
    ).text();
    expect(csv.split("\r\n")[0]).toBe(
      "id,outcome,reason,scan_id,ticket_code,function,device_id,operator_id,session_id,location_id," +
        "scanned_at,recorded_at,over_budget,other_redemption_id,other_device_id,other_scanned_at,other_offline",
    );
    expect(csv).toContain(`,conflict,exhausted,${atNorth.scan_id},${ticket.code},museum,${north.deviceId},`);

    const audit = await eventually(
      () => db().select().from(auditLog).where(eq(auditLog.action, "ticket.offline_conflict")),
      (rows) => rows.some((r) => r.target === ticket.code),
    );
    expect(audit.some((r) => r.target === ticket.code)).toBe(true);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });

  it("the end state does not depend on upload order, and duplicates change nothing", async ({ expect }) => {
    const outcomes = async (order: "forward" | "backward") => {
      const ticket = await paidTicket([{ function: "bus", uses: 2 }]);
      const gates = [await gateSession(), await gateSession(), await gateSession()];
      const scans = await Promise.all(
        gates.map(async (gate, i) => ({
          gate,
          entry: await offlineScan(gate, await currentSupplyToken(ticket), "bus", {
            scannedAt: new Date(Date.now() - 3_000 + i * 1_000),
          }),
        })),
      );
      const ordered = order === "forward" ? scans : [...scans].reverse();
      const counts: Record<string, number> = {};
      for (const { gate, entry } of [...ordered, ...ordered]) {
        const [result] = (await uploadOffline(gate, [entry])).body.results;
        counts[result?.outcome ?? "none"] = (counts[result?.outcome ?? "none"] ?? 0) + 1;
      }
      return { counts, left: await liveUses(ticket, "bus") };
    };
    const forward = await outcomes("forward");
    expect(forward).toEqual({ counts: { applied: 2, conflict: 1, duplicate: 3 }, left: 0 });
    expect(await outcomes("backward")).toEqual(forward);
  });

  it("flags a device that accepted beyond its budget, and records refusals", async ({ expect }) => {
    const analystToken = await analyst();
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const now = Date.now();
    const first = await offlineScan(gate, await currentSupplyToken(ticket), "bus", {
      scannedAt: new Date(now - 3_000),
    });
    // A second accept of the same ticket+function before the first was reconciled: over the budget of 1.
    const second = await offlineScan(gate, await currentSupplyToken(ticket), "bus", {
      scannedAt: new Date(now - 2_000),
    });
    const refused = await offlineScan(gate, await currentSupplyToken(ticket), "bus", {
      scannedAt: new Date(now - 1_000),
      decision: "refused",
    });
    const upload = await uploadOffline(gate, [first, second, refused]);
    expect(upload.body.results).toEqual([
      { scan_id: first.scan_id, outcome: "applied", redemption_id: expect.any(String), remaining_uses: 4 },
      {
        scan_id: second.scan_id,
        outcome: "applied",
        redemption_id: expect.any(String),
        remaining_uses: 3,
        over_budget: true,
      },
      { scan_id: refused.scan_id, outcome: "recorded", remaining_uses: 3 },
    ]);
    // Applied (the holder went in), and kept for the report: the device broke its budget.
    const flagged = await eventually(
      () => conflictReport(analystToken),
      (answer) => answer.body.conflicts.some((c) => c.scan_id === second.scan_id),
    );
    expect(flagged.body.conflicts.find((c) => c.scan_id === second.scan_id)).toMatchObject({
      outcome: "over_budget",
      reason: "in_flight",
      over_budget: true,
    });
    // Once the first came back reconciled, a later accept is within budget again.
    const third = await offlineScan(gate, await currentSupplyToken(ticket), "bus");
    expect((await uploadOffline(gate, [third])).body.results[0]).not.toHaveProperty("over_budget");
    const rejections = await eventually(
      () => db().select().from(auditLog).where(eq(auditLog.target, ticket.code)),
      (rows) => rows.some((r) => JSON.parse(r.details).code === "refused_offline"),
    );
    expect(rejections.map((r) => JSON.parse(r.details))).toContainEqual(
      expect.objectContaining({ result: "rejected", code: "refused_offline", offline: true }),
    );
  });

  it("a forged code or a tampered decision is invalid, spends nothing, and raises a flag", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 1 }]);
    const gate = await gateSession();
    const genuine = await currentSupplyToken(ticket);
    const [header, payload, signature] = genuine.split(".");
    const claims = JSON.parse(atob((payload ?? "").replaceAll("-", "+").replaceAll("_", "/")));
    const forgedPayload = btoa(JSON.stringify({ ...claims, fns: ["bus", "ferry"] }))
      .replaceAll("+", "-")
      .replaceAll("/", "_")
      .replace(/=+$/, "");
    const forged = await offlineScan(gate, `${header}.${forgedPayload}.${signature}`, "bus");
    const honest = await offlineScan(gate, genuine, "bus", { decision: "refused" });
    // The decision changed after the device signed it (refused → accepted).
    const tampered = { ...honest, scan_id: honest.scan_id, decision: "accepted" as const };
    const upload = await uploadOffline(gate, [forged, tampered]);
    expect(upload.body.results.map((r) => r.outcome)).toEqual(["invalid", "invalid"]);
    expect(await liveUses(ticket, "bus")).toBe(1);

    const analystToken = await analyst();
    const report = await eventually(
      () => conflictReport(analystToken),
      (answer) => answer.body.conflicts.filter((c) => c.device_id === gate.deviceId).length === 2,
    );
    expect(
      report.body.conflicts
        .filter((c) => c.device_id === gate.deviceId)
        .map((c) => [c.outcome, c.reason])
        .sort(),
    ).toEqual([
      ["invalid", "device_signature"],
      ["invalid", "token_signature"],
    ]);
  });

  it("an accept without the device's signature is invalid; a refused stray code is only recorded", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 1 }]);
    const gate = await gateSession();
    const unsigned = await offlineScan(gate, await currentSupplyToken(ticket), "bus", { unsigned: true });
    const stray = await offlineScan(gate, "https://example.com/poster", "bus", { decision: "refused" });
    const upload = await uploadOffline(gate, [unsigned, stray]);
    expect(upload.body.results).toEqual([
      { scan_id: unsigned.scan_id, outcome: "invalid" },
      { scan_id: stray.scan_id, outcome: "recorded" },
    ]);
    expect(await liveUses(ticket, "bus")).toBe(1);
  });

  it("needs an open gate session on that device, and at most 500 scans", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 1 }]);
    const gate = await gateSession();
    const other = await gateSession();
    const entry = await offlineScan(gate, await currentSupplyToken(ticket), "bus");
    expect(await uploadOffline(gate, [entry], other.sessionId)).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });
    const pos = await operatorToken(["pos"]);
    expect(await uploadOffline({ ...gate, token: pos.token }, [entry])).toMatchObject({
      status: 403,
      body: { code: "forbidden" },
    });
    const tooMany = Array.from({ length: 501 }, () => entry);
    expect(await uploadOffline(gate, tooMany)).toMatchObject({
      status: 400,
      body: { code: "validation_failed" },
    });
    expect(await uploadOffline(gate, [])).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    expect(await uploadOffline(gate, [{ ...entry, scanned_at: "yesterday" }])).toMatchObject({
      status: 400,
      body: { code: "validation_failed" },
    });
    expect(await liveUses(ticket, "bus")).toBe(1);
  });

  it("a decision is recorded under the shift it was made in, which must be the same device's", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 3 }]);
    const morning = await gateSession();
    // The afternoon shift: another operator opens a session on the same device and uploads the queue.
    const afternoonOperator = await operatorToken(["gate"]);
    const afternoonSession = await openSession(afternoonOperator.token, { device_id: morning.deviceId });
    expect(afternoonSession.status).toBe(201);
    const afternoon: Gate = {
      ...afternoonOperator,
      deviceId: morning.deviceId,
      sessionId: afternoonSession.body.session_id,
    };
    const other = await gateSession();

    const madeInTheMorning = await offlineScan(afternoon, await currentSupplyToken(ticket), "bus", {
      sessionId: morning.sessionId,
    });
    const namingAnotherDevice = await offlineScan(afternoon, await currentSupplyToken(ticket), "bus", {
      sessionId: other.sessionId,
    });
    const upload = await uploadOffline(afternoon, [madeInTheMorning, namingAnotherDevice]);
    expect(upload.body.results.map((r) => r.outcome)).toEqual(["applied", "invalid"]);
    const redemptionId = upload.body.results[0]?.redemption_id ?? "";
    const [row] = await eventually(
      () => db().select().from(redemptions).where(eq(redemptions.id, redemptionId)),
      (rows) => rows.length === 1,
    );
    expect(row).toMatchObject({
      operatorId: morning.operatorId,
      sessionId: morning.sessionId,
      offline: true,
    });
    // The session is part of what the device signed: naming another one after the fact is tampering.
    const relabelled = {
      ...madeInTheMorning,
      scan_id: madeInTheMorning.scan_id,
      session_id: afternoon.sessionId,
    };
    expect((await uploadOffline(afternoon, [relabelled])).body.results[0]?.outcome).toBe("invalid");
  });

  it("a device limited to some functions cannot have others reconciled", async ({ expect }) => {
    const ticket = await paidTicket([
      { function: "bus", uses: 1 },
      { function: "ferry", uses: 1 },
    ]);
    const operator = await operatorToken(["gate"]);
    const deviceId = await registeredDevice({ kind: "gate", location_id: "loc-test", functions: ["bus"] });
    const session = await openSession(operator.token, { device_id: deviceId });
    const gate: Gate = { ...operator, deviceId, sessionId: session.body.session_id };
    const entry = await offlineScan(gate, await currentSupplyToken(ticket), "ferry");
    expect((await uploadOffline(gate, [entry])).body.results[0]?.outcome).toBe("invalid");
    expect(await liveUses(ticket, "ferry")).toBe(1);
  });
});

/** A ticket token for the window starting at `at`, as the supply signs them (`at` may be in the past). */
async function windowTokenAt(ticket: PaidTicket, functions: string[], at: Date): Promise<string> {
  const { token } = await signTicketQrToken(
    qrSigningConfig(loadConfig(env)),
    { code: ticket.code, functions, usedUp: [] },
    new Date(),
    at,
  );
  return token;
}
