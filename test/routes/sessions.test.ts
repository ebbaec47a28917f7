import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { getDb } from "../../src/db/client";
import { requireOpenSession } from "../../src/http/refusals";
import { VALIDATOR_SESSION_SECONDS } from "../../src/services/validator-sessions";
import { auditRequests, auditSettled } from "../support/audit";
import { operatorToken } from "../support/fixtures";
import { callJson } from "../support/http";
import {
  adminOperator,
  openSession,
  registeredDevice,
  type SessionBody,
  uniqueDeviceId,
} from "../support/staff";

const db = () => getDb(env.DB);
const EVENT = "evt-sessions";

describe("POST /validators/sessions", () => {
  it("opens a gate session with the device's location and a 12 h expiry", async ({ expect }) => {
    const deviceId = await registeredDevice({ kind: "gate", location_id: "loc-pier-1", functions: ["bus"] });
    const gate = await operatorToken(["gate"]);
    const opened = await openSession(gate.token, { device_id: deviceId });
    expect(opened.status).toBe(201);
    expect(opened.body).toMatchObject({
      operator_id: gate.operatorId,
      device_id: deviceId,
      kind: "gate",
      location_id: "loc-pier-1",
      event_id: null,
      closed_at: null,
    });
    expect(opened.body.session_id).toMatch(/^ses_/);
    const lifetime = Date.parse(opened.body.expires_at) - Date.parse(opened.body.opened_at);
    expect(lifetime).toBe(VALIDATOR_SESSION_SECONDS * 1000);

    const open = await requireOpenSession(db(), {
      sessionId: opened.body.session_id,
      operatorId: gate.operatorId,
      kind: "gate",
      now: new Date(),
    });
    expect(open.session.session_id).toBe(opened.body.session_id);
    expect(open.device).toMatchObject({ device_id: deviceId, functions: ["bus"], active: true });
  });

  it("never takes a location from the body: the scope is the device's (422 otherwise)", async ({
    expect,
  }) => {
    const deviceId = await registeredDevice({ kind: "gate", location_id: "loc-pier-1" });
    const gate = await operatorToken(["gate"]);
    const elsewhere = await openSession(gate.token, { device_id: deviceId, location_id: "loc-museum" });
    expect(elsewhere.status).toBe(422);
    expect(elsewhere.body.code).toBe("device_scope_mismatch");
    const opened = await openSession(gate.token, { device_id: deviceId });
    expect(opened.status).toBe(201);
    expect(opened.body.location_id).toBe("loc-pier-1");
  });

  it("opens a pos session for an event in the operator's event_ids", async ({ expect }) => {
    const deviceId = await registeredDevice({ kind: "pos", event_id: EVENT });
    const pos = await operatorToken(["pos"], ["evt-other", EVENT]);
    const opened = await openSession(pos.token, { device_id: deviceId });
    expect(opened.status).toBe(201);
    expect(opened.body).toMatchObject({ kind: "pos", event_id: EVENT });
  });

  it("lets an admin open either kind, without event_ids", async ({ expect }) => {
    const admin = await adminOperator();
    const gateDevice = await registeredDevice({ kind: "gate" });
    const posDevice = await registeredDevice({ kind: "pos", event_id: EVENT });
    expect((await openSession(admin.token, { device_id: gateDevice })).status).toBe(201);
    expect((await openSession(admin.token, { device_id: posDevice })).status).toBe(201);
  });

  it("403 forbidden: gate operator on a pos device, pos operator on a gate device", async ({ expect }) => {
    const posDevice = await registeredDevice({ kind: "pos", event_id: EVENT });
    const gateDevice = await registeredDevice({ kind: "gate" });
    const gate = await operatorToken(["gate"], [EVENT]);
    const pos = await operatorToken(["pos"], [EVENT]);
    const gateOnPos = await openSession(gate.token, { device_id: posDevice });
    expect(gateOnPos.status).toBe(403);
    expect(gateOnPos.body.code).toBe("forbidden");
    const posOnGate = await openSession(pos.token, { device_id: gateDevice });
    expect(posOnGate.status).toBe(403);
    expect(posOnGate.body.code).toBe("forbidden");
  });

  it("403 forbidden: pos operator whose event_ids lack the device's event", async ({ expect }) => {
    const deviceId = await registeredDevice({ kind: "pos", event_id: EVENT });
    const pos = await operatorToken(["pos"], ["evt-elsewhere"]);
    const response = await openSession(pos.token, { device_id: deviceId });
    expect(response.status).toBe(403);
    expect(response.body.code).toBe("forbidden");
  });

  it("422 device_scope_mismatch: an event_id or location_id other than the device's, even one the operator holds", async ({
    expect,
  }) => {
    const deviceId = await registeredDevice({ kind: "pos", event_id: EVENT, location_id: "loc-bar" });
    const pos = await operatorToken(["pos"], [EVENT, "evt-elsewhere"]);
    const otherEvent = await openSession(pos.token, { device_id: deviceId, event_id: "evt-elsewhere" });
    expect(otherEvent.status).toBe(422);
    expect(otherEvent.body.code).toBe("device_scope_mismatch");
    const otherPlace = await openSession(pos.token, {
      device_id: deviceId,
      location_id: "loc-somewhere-else",
    });
    expect(otherPlace.status).toBe(422);
    expect(otherPlace.body.code).toBe("device_scope_mismatch");
    // Naming the device's own scope is allowed, and the session takes it from the device either way.
    const same = await openSession(pos.token, {
      device_id: deviceId,
      event_id: EVENT,
      location_id: "loc-bar",
    });
    expect(same.status).toBe(201);
    expect(same.body).toMatchObject({ event_id: EVENT, location_id: "loc-bar" });
  });

  it("403 forbidden for an analyst", async ({ expect }) => {
    const deviceId = await registeredDevice({ kind: "gate" });
    const analyst = await operatorToken(["analyst"]);
    const response = await openSession(analyst.token, { device_id: deviceId });
    expect(response.status).toBe(403);
    expect(response.body.code).toBe("forbidden");
  });

  it("403 device_not_authorized for an unregistered or deactivated device", async ({ expect }) => {
    const gate = await operatorToken(["gate"]);
    const unknown = await openSession(gate.token, { device_id: uniqueDeviceId() });
    expect(unknown.status).toBe(403);
    expect(unknown.body.code).toBe("device_not_authorized");

    const deviceId = await registeredDevice({ kind: "gate" });
    const admin = await adminOperator();
    await callJson("PATCH", `/admin/devices/${deviceId}`, { token: admin.token, body: { active: false } });
    const inactive = await openSession(gate.token, { device_id: deviceId });
    expect(inactive.status).toBe(403);
    expect(inactive.body.code).toBe("device_not_authorized");
  });

  it("400 validation_failed for bad bodies, 401 without a token", async ({ expect }) => {
    const gate = await operatorToken(["gate"]);
    for (const body of [{}, { device_id: 5 }, { device_id: "dev-1", extra: true }, { device_id: "a b" }]) {
      const response = await callJson<{ code: string }>("POST", "/validators/sessions", {
        token: gate.token,
        body,
      });
      expect(response.status).toBe(400);
      expect(response.body.code).toBe("validation_failed");
    }
    const anonymous = await callJson<{ code: string }>("POST", "/validators/sessions", {
      body: { device_id: "dev-1" },
    });
    expect(anonymous.status).toBe(401);
  });
});

describe("DELETE /validators/sessions/{id} and requireOpenSession", () => {
  async function openGateSession() {
    const deviceId = await registeredDevice({ kind: "gate" });
    const gate = await operatorToken(["gate"]);
    const opened = await openSession(gate.token, { device_id: deviceId });
    if (opened.status !== 201) throw new Error(`open failed: ${opened.status}`);
    return { gate, deviceId, session: opened.body };
  }

  it("closes a session; closing again is idempotent; the session is then invalid", async ({ expect }) => {
    const { gate, session } = await openGateSession();
    const closed = await callJson<SessionBody>("DELETE", `/validators/sessions/${session.session_id}`, {
      token: gate.token,
    });
    expect(closed.status).toBe(200);
    expect(closed.body.session_id).toBe(session.session_id);
    expect(closed.body.closed_at).not.toBeNull();

    const again = await callJson<SessionBody>("DELETE", `/validators/sessions/${session.session_id}`, {
      token: gate.token,
    });
    expect(again.status).toBe(200);
    expect(again.body.closed_at).toBe(closed.body.closed_at);

    await expect(
      requireOpenSession(db(), {
        sessionId: session.session_id,
        operatorId: gate.operatorId,
        kind: "gate",
        now: new Date(),
      }),
    ).rejects.toMatchObject({ code: "session_invalid", status: 403 });
  });

  it("concurrent closes all answer 200 with one closed_at and write one audit entry", async ({ expect }) => {
    const { gate, session } = await openGateSession();
    const responses = await Promise.all(
      Array.from({ length: 5 }, () =>
        callJson<SessionBody>("DELETE", `/validators/sessions/${session.session_id}`, { token: gate.token }),
      ),
    );
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 200, 200]);
    expect(new Set(responses.map((response) => response.body.closed_at)).size).toBe(1);
    // One request committed (the losers' rolled back with their close), and so one entry chained.
    expect(await auditRequests({ action: "session.close", target: session.session_id })).toHaveLength(1);
    await auditSettled();
    const closes = await env.DB.prepare(
      "SELECT count(*) AS n FROM audit_log WHERE action = 'session.close' AND target = ?",
    )
      .bind(session.session_id)
      .first<{ n: number }>();
    expect(closes?.n).toBe(1);
  });

  it("an expired session is invalid", async ({ expect }) => {
    const { gate, session } = await openGateSession();
    const check = (now: Date) =>
      requireOpenSession(db(), {
        sessionId: session.session_id,
        operatorId: gate.operatorId,
        kind: "gate",
        now,
      });
    const expiry = Date.parse(session.expires_at);
    await expect(check(new Date(expiry - 1_000))).resolves.toBeDefined();
    await expect(check(new Date(expiry))).rejects.toMatchObject({ code: "session_invalid" });
    await expect(check(new Date(expiry + 60_000))).rejects.toMatchObject({ code: "session_invalid" });
  });

  it("someone else's session: invalid for them, and DELETE answers 404", async ({ expect }) => {
    const { session } = await openGateSession();
    const other = await operatorToken(["gate"]);
    await expect(
      requireOpenSession(db(), {
        sessionId: session.session_id,
        operatorId: other.operatorId,
        kind: "gate",
        now: new Date(),
      }),
    ).rejects.toMatchObject({ code: "session_invalid" });
    const response = await callJson<{ code: string }>(
      "DELETE",
      `/validators/sessions/${session.session_id}`,
      {
        token: other.token,
      },
    );
    expect(response.status).toBe(404);
    expect(response.body.code).toBe("not_found");
  });

  it("an admin may close anyone's session", async ({ expect }) => {
    const { session } = await openGateSession();
    const admin = await adminOperator();
    const response = await callJson<SessionBody>("DELETE", `/validators/sessions/${session.session_id}`, {
      token: admin.token,
    });
    expect(response.status).toBe(200);
    expect(response.body.closed_at).not.toBeNull();
  });

  it("a session of the other kind, an unknown session, or a deactivated device is invalid", async ({
    expect,
  }) => {
    const { gate, deviceId, session } = await openGateSession();
    const check = (sessionId: string, kind: "gate" | "pos") =>
      requireOpenSession(db(), { sessionId, operatorId: gate.operatorId, kind, now: new Date() });
    await expect(check(session.session_id, "pos")).rejects.toMatchObject({ code: "session_invalid" });
    await expect(check("ses_doesnotexist", "gate")).rejects.toMatchObject({ code: "session_invalid" });

    await expect(check(session.session_id, "gate")).resolves.toBeDefined();
    const admin = await adminOperator();
    await callJson("PATCH", `/admin/devices/${deviceId}`, { token: admin.token, body: { active: false } });
    await expect(check(session.session_id, "gate")).rejects.toMatchObject({ code: "session_invalid" });
  });

  it("404 for an unknown session id", async ({ expect }) => {
    const gate = await operatorToken(["gate"]);
    const response = await callJson<{ code: string }>("DELETE", "/validators/sessions/ses_nope", {
      token: gate.token,
    });
    expect(response.status).toBe(404);
    expect(response.body.code).toBe("not_found");
  });
});
