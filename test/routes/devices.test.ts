import { describe, it } from "vitest";
import { operatorToken } from "../support/fixtures";
import { call, callJson } from "../support/http";
import { adminOperator, uniqueDeviceId } from "../support/staff";

interface DeviceBody {
  device_id: string;
  kind: string;
  location_id: string | null;
  event_id: string | null;
  functions: string[] | null;
  active: boolean;
  created_at: string;
  updated_at: string;
}

interface Problem {
  code: string;
  status: number;
  errors?: { path: string; message: string }[];
}

describe("POST /admin/devices", () => {
  it("registers a gate device restricted to some functions", async ({ expect }) => {
    const admin = await adminOperator();
    const deviceId = uniqueDeviceId("gate");
    const created = await callJson<DeviceBody>("POST", "/admin/devices", {
      token: admin.token,
      body: { device_id: deviceId, kind: "gate", location_id: "loc-pier-1", functions: ["bus", "ferry"] },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      device_id: deviceId,
      kind: "gate",
      location_id: "loc-pier-1",
      event_id: null,
      functions: ["bus", "ferry"],
      active: true,
    });
  });

  it("registers a pos device with its event; a gate without functions validates everything", async ({
    expect,
  }) => {
    const admin = await adminOperator();
    const pos = await callJson<DeviceBody>("POST", "/admin/devices", {
      token: admin.token,
      body: { device_id: uniqueDeviceId("pos"), kind: "pos", event_id: "evt-demo" },
    });
    expect(pos.status).toBe(201);
    expect(pos.body).toMatchObject({ kind: "pos", event_id: "evt-demo", functions: null, location_id: null });
    const gate = await callJson<DeviceBody>("POST", "/admin/devices", {
      token: admin.token,
      body: { device_id: uniqueDeviceId("gate"), kind: "gate" },
    });
    expect(gate.status).toBe(201);
    expect(gate.body.functions).toBeNull();
  });

  it("409 device_exists on a second registration of the same id", async ({ expect }) => {
    const admin = await adminOperator();
    const body = { device_id: uniqueDeviceId("gate"), kind: "gate" };
    expect((await callJson("POST", "/admin/devices", { token: admin.token, body })).status).toBe(201);
    const again = await callJson<Problem>("POST", "/admin/devices", {
      token: admin.token,
      body: { ...body, location_id: "elsewhere" },
    });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("device_exists");
    expect(again.headers.get("content-type")).toContain("application/problem+json");
  });

  it.for<[string, Record<string, unknown>, string]>([
    ["a pos device without event_id", { kind: "pos" }, "event_id"],
    ["functions on a pos device", { kind: "pos", event_id: "evt-1", functions: ["bus"] }, "functions"],
    ["an unknown kind", { kind: "kiosk" }, "kind"],
    ["an empty functions list", { kind: "gate", functions: [] }, "functions"],
    ["a malformed function name", { kind: "gate", functions: ["Bus Ride"] }, "functions.0"],
    ["duplicate functions", { kind: "gate", functions: ["bus", "bus"] }, "functions"],
    ["an unknown field", { kind: "gate", colour: "red" }, "(root)"],
    ["a non-string location", { kind: "gate", location_id: 7 }, "location_id"],
  ])("400 validation_failed for %s", async ([, fields, path], { expect }) => {
    const admin = await adminOperator();
    const response = await callJson<Problem>("POST", "/admin/devices", {
      token: admin.token,
      body: { device_id: uniqueDeviceId(), ...fields },
    });
    expect(response.status).toBe(400);
    expect(response.body.code).toBe("validation_failed");
    expect(response.body.errors?.map((error) => error.path)).toContain(path);
  });

  it.for<[string, string]>([
    ["with a space", "gate 1"],
    ["too long", "g".repeat(65)],
    ["empty", ""],
    ["with a slash", "gate/1"],
  ])("400 for a device_id %s", async ([, deviceId], { expect }) => {
    const admin = await adminOperator();
    const response = await callJson<Problem>("POST", "/admin/devices", {
      token: admin.token,
      body: { device_id: deviceId, kind: "gate" },
    });
    expect(response.status).toBe(400);
    expect(response.body.code).toBe("validation_failed");
  });

  it("400 invalid_json for a broken body", async ({ expect }) => {
    const admin = await adminOperator();
    const response = await call("POST", "/admin/devices", {
      token: admin.token,
      rawBody: '{"device_id": "x",',
      headers: { "content-type": "application/json" },
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as Problem).code).toBe("invalid_json");
  });

  it("403 for a non-admin, 401 without a token", async ({ expect }) => {
    const gate = await operatorToken(["gate"]);
    const body = { device_id: uniqueDeviceId(), kind: "gate" };
    const forbidden = await callJson<Problem>("POST", "/admin/devices", { token: gate.token, body });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.code).toBe("forbidden");
    const anonymous = await callJson<Problem>("POST", "/admin/devices", { body });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.code).toBe("unauthenticated");
  });
});

describe("PATCH /admin/devices/{id}", () => {
  it("deactivates and reactivates a device", async ({ expect }) => {
    const admin = await adminOperator();
    const deviceId = uniqueDeviceId("gate");
    await callJson("POST", "/admin/devices", {
      token: admin.token,
      body: { device_id: deviceId, kind: "gate" },
    });
    const off = await callJson<DeviceBody>("PATCH", `/admin/devices/${deviceId}`, {
      token: admin.token,
      body: { active: false },
    });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ device_id: deviceId, active: false });
    const on = await callJson<DeviceBody>("PATCH", `/admin/devices/${deviceId}`, {
      token: admin.token,
      body: { active: true },
    });
    expect(on.status).toBe(200);
    expect(on.body.active).toBe(true);
  });

  it("404 for an unknown device", async ({ expect }) => {
    const admin = await adminOperator();
    const response = await callJson<Problem>("PATCH", `/admin/devices/${uniqueDeviceId()}`, {
      token: admin.token,
      body: { active: false },
    });
    expect(response.status).toBe(404);
    expect(response.body.code).toBe("not_found");
  });

  it.for<[string, Record<string, unknown>]>([
    ["no fields", {}],
    ["a non-boolean", { active: "no" }],
    ["another field", { active: true, kind: "pos" }],
  ])("400 for a body with %s", async ([, body], { expect }) => {
    const admin = await adminOperator();
    const deviceId = uniqueDeviceId("gate");
    await callJson("POST", "/admin/devices", {
      token: admin.token,
      body: { device_id: deviceId, kind: "gate" },
    });
    const response = await callJson<Problem>("PATCH", `/admin/devices/${deviceId}`, {
      token: admin.token,
      body,
    });
    expect(response.status).toBe(400);
    expect(response.body.code).toBe("validation_failed");
  });

  it("403 for a non-admin", async ({ expect }) => {
    const admin = await adminOperator();
    const deviceId = uniqueDeviceId("gate");
    await callJson("POST", "/admin/devices", {
      token: admin.token,
      body: { device_id: deviceId, kind: "gate" },
    });
    const pos = await operatorToken(["pos"], ["evt-demo"]);
    const response = await callJson<Problem>("PATCH", `/admin/devices/${deviceId}`, {
      token: pos.token,
      body: { active: false },
    });
    expect(response.status).toBe(403);
    expect(response.body.code).toBe("forbidden");
  });
});
