import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { CRON_DAILY_EXPORT } from "../../src/cron";
import { redemptions } from "../../src/db/schema";
import { eventually } from "../support/eventually";
import { db, operatorToken } from "../support/fixtures";
import { call, callJson } from "../support/http";
import { gateSession, paidTicket, qrToken, scan } from "../support/tickets";
import { runCron } from "../support/worker";

interface Report {
  rows: { day: string; function: string; location_id: string | null; redemptions: number }[];
  total: number;
}

describe("GET /reports/redemptions", () => {
  it("counts exactly the accepted scans, through the real object outbox and queue, within 10 s", async ({
    expect,
  }) => {
    const location = `loc-${crypto.randomUUID().slice(0, 8)}`;
    const ticket = await paidTicket([
      { function: "bus", uses: 3 },
      { function: "ferry", uses: 1 },
    ]);
    const gate = await gateSession({ location });
    const attempts = await Promise.all([
      ...Array.from({ length: 5 }, async () => scan(gate, await qrToken(ticket), "bus")),
      ...Array.from({ length: 3 }, async () => scan(gate, await qrToken(ticket), "ferry")),
    ]);
    expect(attempts.filter((a) => a.status === 200)).toHaveLength(4);

    const analyst = await operatorToken(["analyst"]);
    const today = new Date().toISOString().slice(0, 10);
    const report = await eventually(
      async () =>
        (
          await callJson<Report>(
            "GET",
            `/reports/redemptions?from=${today}&to=${today}&location_id=${location}`,
            {
              token: analyst.token,
            },
          )
        ).body,
      (body) => body.total >= 4,
    );
    expect(report.total).toBe(4);
    expect(report.rows).toEqual([
      { day: today, function: "bus", location_id: location, redemptions: 3 },
      { day: today, function: "ferry", location_id: location, redemptions: 1 },
    ]);

    const onlyFerry = await callJson<Report>(
      "GET",
      `/reports/redemptions?from=${today}&to=${today}&location_id=${location}&function=ferry`,
      { token: analyst.token },
    );
    expect(onlyFerry.body.total).toBe(1);

    const csv = await call("GET", `/reports/redemptions?from=${today}&to=${today}&location_id=${location}`, {
      token: analyst.token,
      headers: { accept: "text/csv" },
    });
    expect(csv.headers.get("content-type")).toContain("text/csv");
    const lines = (await csv.text()).trim().split("\r\n");
    expect(lines[0]).toBe(
      "redemption_id,ts,ticket_code,function,operator_id,session_id,device_id,location_id,annulled_at,offline",
    );
    expect(lines).toHaveLength(5);
    expect(lines.slice(1).every((line) => line.includes(ticket.code) && line.includes(gate.sessionId))).toBe(
      true,
    );
  });

  it("is for analysts and admins only, and bounds the range", async ({ expect }) => {
    const gate = await operatorToken(["gate"]);
    expect(
      (await callJson("GET", "/reports/redemptions?from=2026-01-01&to=2026-01-02", { token: gate.token }))
        .status,
    ).toBe(403);
    const admin = await operatorToken(["admin"]);
    const tooLong = await callJson("GET", "/reports/redemptions?from=2024-01-01&to=2026-01-02", {
      token: admin.token,
    });
    expect(tooLong).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    const garbage = await callJson("GET", "/reports/redemptions?from=yesterday-ish&to=2026-01-02", {
      token: admin.token,
    });
    expect(garbage).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    const reversed = await callJson("GET", "/reports/redemptions?from=2026-01-05&to=2026-01-02", {
      token: admin.token,
    });
    expect(reversed.status).toBe(400);
  });
});

describe("daily export", () => {
  it("writes yesterday's redemptions as CSV to R2; a second run writes the same object", async ({
    expect,
  }) => {
    const day = "2026-03-14";
    await db()
      .insert(redemptions)
      .values([
        {
          id: "red_exp_1",
          ticketCode: "T1",
          function: "bus",
          operatorId: "o",
          sessionId: "s",
          deviceId: "d",
          locationId: "l,1",
          ts: `${day}T08:00:00.000Z`,
        },
        {
          id: "red_exp_2",
          ticketCode: "T2",
          function: "=cmd",
          operatorId: "o",
          sessionId: "s",
          deviceId: "d",
          locationId: null,
          ts: `${day}T23:59:59.999Z`,
        },
        {
          id: "red_exp_3",
          ticketCode: "T3",
          function: "bus",
          operatorId: "o",
          sessionId: "s",
          deviceId: "d",
          locationId: "l",
          ts: "2026-03-15T00:00:00.000Z",
        },
      ]);
    const runAt = Date.parse("2026-03-15T00:10:00Z");
    await runCron(CRON_DAILY_EXPORT, runAt);
    const first = await env.EXPORTS.get(`redemptions-${day}.csv`);
    const text = await first?.text();
    expect(text).toBe(
      "redemption_id,ts,ticket_code,function,operator_id,session_id,device_id,location_id,annulled_at,offline\r\n" +
        `red_exp_1,${day}T08:00:00.000Z,T1,bus,o,s,d,"l,1",,false\r\n` +
        `red_exp_2,${day}T23:59:59.999Z,T2,'=cmd,o,s,d,,,false\r\n`,
    );
    await runCron(CRON_DAILY_EXPORT, runAt);
    const second = await env.EXPORTS.get(`redemptions-${day}.csv`);
    expect(await second?.text()).toBe(text);

    const analyst = await operatorToken(["analyst"]);
    const listed = await callJson<{ exports: { name: string }[] }>("GET", "/reports/exports", {
      token: analyst.token,
    });
    expect(listed.body.exports.map((e) => e.name)).toContain(`redemptions-${day}.csv`);
    const download = await call("GET", `/reports/exports/redemptions-${day}.csv`, { token: analyst.token });
    expect(await download.text()).toBe(text);
    const missing = await callJson("GET", "/reports/exports/redemptions-1999-01-01.csv", {
      token: analyst.token,
    });
    expect(missing.status).toBe(404);
    const traversal = await callJson("GET", "/reports/exports/..%2Fsecret", { token: analyst.token });
    expect(traversal.status).toBe(400);
  });
});
