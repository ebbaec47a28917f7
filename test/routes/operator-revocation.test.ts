import { env } from "cloudflare:workers";
import { and, eq, inArray, sql } from "drizzle-orm";
import { SignJWT } from "jose";
import { describe, it } from "vitest";
import {
  OPERATOR_TOKEN_AUDIENCE,
  OPERATOR_TOKEN_TYP,
  verifyOperatorToken,
} from "../../src/auth/operator-token";
import { auditLog, operators, validatorSessions } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import { requireOpenSession } from "../../src/http/refusals";
import { currentOperator, OPERATOR_RECORD_CACHE_MS } from "../../src/services/current-operator";
import { SESSION_CACHE_MS } from "../../src/services/session-cache";
import type { OperatorRole } from "../../src/types/domain";
import { auditRequests, auditSettled } from "../support/audit";
import { callWith, faultyD1 } from "../support/faulty-d1";
import { db, operatorToken, TEST_PASSWORD } from "../support/fixtures";
import { callJson } from "../support/http";
import { adminOperator, openSession, registeredDevice } from "../support/staff";
import { type PaidTicket, paidTicket, qrToken, scan } from "../support/tickets";
import { deduct, fundedWallet, posTill, refund, walletQr } from "../support/wallet";

// The contract: within 5 s of a deactivation or password reset every token of the operator is refused
// everywhere (401) and their open sessions are closed; a change of roles or event_ids takes effect within
// 5 s. The isolate that makes a change forgets its copy of the operator record at once, so every request
// below (same isolate) sees the change immediately; other isolates are covered by calling currentOperator.

interface OperatorBody {
  operator_id: string;
  username: string;
  roles: string[];
  event_ids: string[];
  active: boolean;
  created_at: string;
  updated_at: string;
  code?: string;
  errors?: { path: string; message: string }[];
}

const NEW_PASSWORD = "a-brand-new-passphrase";

const uniqueEvent = () => `evt-${crypto.randomUUID().slice(0, 8)}`;

async function adminToken() {
  return (await adminOperator()).token;
}

async function patchOperator(id: string, body: unknown, token?: string) {
  return callJson<OperatorBody>("PATCH", `/admin/operators/${id}`, {
    token: token ?? (await adminToken()),
    body,
  });
}

async function resetPassword(id: string, body: unknown, token?: string) {
  return callJson<OperatorBody>("POST", `/admin/operators/${id}/password`, {
    token: token ?? (await adminToken()),
    body,
  });
}

function login(username: string, password: string) {
  return callJson<{ operator_token: string; code?: string }>("POST", "/operators/login", {
    body: { username, password },
  });
}

/** An operator logged in through the API, with an open session on a fresh device for each of gate and pos. */
async function staffOnShift(roles: OperatorRole[], eventIds: string[] = [uniqueEvent()]) {
  const operator = await operatorToken(roles, eventIds);
  let gateSessionId: string | undefined;
  let posSessionId: string | undefined;
  if (roles.includes("gate")) {
    const deviceId = await registeredDevice({ kind: "gate", location_id: "loc-revocation" });
    const opened = await openSession(operator.token, { device_id: deviceId });
    if (opened.status !== 201) throw new Error(`gate session failed: ${opened.status}`);
    gateSessionId = opened.body.session_id;
  }
  if (roles.includes("pos")) {
    const deviceId = await registeredDevice({ kind: "pos", event_id: eventIds[0] });
    const opened = await openSession(operator.token, { device_id: deviceId });
    if (opened.status !== 201) throw new Error(`POS session failed: ${opened.status}`);
    posSessionId = opened.body.session_id;
  }
  return { ...operator, eventIds, gateSessionId: gateSessionId ?? "", posSessionId: posSessionId ?? "" };
}

let ticket: Promise<PaidTicket> | undefined;
/** One ticket with plenty of bus rides, shared by every scan below: each scan gets a fresh QR token. */
function busTicket() {
  ticket ??= paidTicket([{ function: "bus", uses: 100 }]);
  return ticket;
}

async function scanProbe(token: string, sessionId: string) {
  return scan({ token, sessionId }, await qrToken(await busTicket()), "bus");
}

let walletToken: Promise<string> | undefined;
async function lookupProbe(token: string, sessionId: string) {
  walletToken ??= fundedWallet(0).then((wallet) => walletQr(wallet.token));
  return callJson<{ wallet_ref?: string; code?: string }>("POST", "/pos/wallet-lookup", {
    token,
    body: { qr_token: await walletToken, session_id: sessionId },
  });
}

function adminProbe(token: string) {
  return callJson<{ operators?: OperatorBody[]; code?: string }>("GET", "/admin/operators?limit=1", {
    token,
  });
}

function sessionRows(ids: string[]) {
  return db().select().from(validatorSessions).where(inArray(validatorSessions.id, ids));
}

/**
 * The entries of `action` on `target`, once the consumer has chained every entry requested so far, in
 * chain order (the consumer's: the queue does not promise the actions' order).
 */
async function auditEntries(target: string, action: string) {
  await auditSettled();
  return db()
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.target, target), eq(auditLog.action, action)))
    .orderBy(auditLog.seq);
}

/**
 * The time an audit entry's request carries: the action's own. The chained entry's `ts` is that or later,
 * since the consumer never lets `ts` step back along the chain and the queue keeps no order, so an entry
 * may be chained after one requested a moment later.
 */
async function requestedTs(auditId: string | undefined): Promise<string | undefined> {
  const row = await env.DB.prepare(
    "SELECT json_extract(payload, '$.audit.ts') AS ts FROM outbox WHERE json_extract(payload, '$.audit.id') = ?",
  )
    .bind(auditId ?? "")
    .first<{ ts: string }>();
  return row?.ts;
}

describe("PATCH /admin/operators/{id}: deactivation", () => {
  it("refuses the operator's token at once in this isolate: scans, POS lookups, admin routes → 401", async ({
    expect,
  }) => {
    const staff = await staffOnShift(["gate", "pos"]);
    const otherAdmin = await operatorToken(["admin"]);
    // Accepted first, which also leaves each operator's record in this isolate's cache.
    expect((await scanProbe(staff.token, staff.gateSessionId)).body.result).toBe("accepted");
    expect((await lookupProbe(staff.token, staff.posSessionId)).status).toBe(200);
    expect((await adminProbe(otherAdmin.token)).status).toBe(200);

    expect(await patchOperator(staff.operatorId, { active: false })).toMatchObject({
      status: 200,
      body: { operator_id: staff.operatorId, active: false },
    });
    expect((await patchOperator(otherAdmin.operatorId, { active: false })).status).toBe(200);

    const refused = { status: 401, body: { code: "unauthenticated" } };
    expect(await scanProbe(staff.token, staff.gateSessionId)).toMatchObject(refused);
    expect(await lookupProbe(staff.token, staff.posSessionId)).toMatchObject(refused);
    const device = await registeredDevice({ kind: "gate", location_id: "loc-revocation" });
    expect(await openSession(staff.token, { device_id: device })).toMatchObject(refused);
    expect(await adminProbe(otherAdmin.token)).toMatchObject(refused);
    expect(await patchOperator(staff.operatorId, { active: true }, otherAdmin.token)).toMatchObject(refused);
  });

  it("closes their open sessions in the batch that requests operator.update", async ({ expect }) => {
    const staff = await staffOnShift(["gate", "pos"]);
    const admin = await adminOperator();
    const deactivated = await patchOperator(staff.operatorId, { active: false });
    expect(deactivated.status).toBe(200);

    const [entry, ...more] = await auditEntries(staff.operatorId, "operator.update");
    expect(more).toHaveLength(0);
    expect(entry).toMatchObject({ actor: admin.operatorId });
    expect(JSON.parse(entry?.details ?? "{}")).toEqual({
      active: { from: true, to: false },
      sessions_closed: true,
    });
    const sessions = await sessionRows([staff.gateSessionId, staff.posSessionId]);
    expect(sessions).toHaveLength(2);
    // One `now` for the whole batch: the sessions closed at the instant the audit request records (the
    // chained entry's ts is that or later; see requestedTs).
    const requested = await requestedTs(entry?.id);
    for (const session of sessions) expect(session.closedAt).toBe(requested);
    expect(deactivated.body.updated_at).toBe(requested);
    expect(Date.parse(entry?.ts ?? "")).toBeGreaterThanOrEqual(Date.parse(requested ?? ""));
  });

  it("commits nothing when the batch fails: still active, sessions open, no audit entry", async ({
    expect,
  }) => {
    const staff = await staffOnShift(["gate"]);
    // The change's batch (operator, sessions, audit request) is the first batch the request runs.
    const failed = await callWith(
      faultyD1(1, "before"),
      new Request(`https://passes.test/admin/operators/${staff.operatorId}`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${await adminToken()}`, "content-type": "application/json" },
        body: JSON.stringify({ active: false }),
      }),
    );
    expect(failed.status).toBeGreaterThanOrEqual(500);
    expect(await failed.text()).not.toMatch(/D1_ERROR|SQL|stack/i);

    const [row] = await db().select().from(operators).where(eq(operators.id, staff.operatorId));
    expect(row).toMatchObject({ active: true, credentialVersion: 1 });
    const [session] = await sessionRows([staff.gateSessionId]);
    expect(session?.closedAt).toBeNull();
    expect(await auditRequests({ target: staff.operatorId, action: "operator.update" })).toEqual([]);
    expect(await auditEntries(staff.operatorId, "operator.update")).toHaveLength(0);
    expect((await scanProbe(staff.token, staff.gateSessionId)).body.result).toBe("accepted");
  });

  it("reactivating does not bring the old token back; a new login works", async ({ expect }) => {
    const staff = await staffOnShift(["gate"]);
    expect((await patchOperator(staff.operatorId, { active: false })).status).toBe(200);
    const inactiveLogin = await login(staff.username, TEST_PASSWORD);
    expect(inactiveLogin).toMatchObject({ status: 401, body: { code: "invalid_credentials" } });

    expect(await patchOperator(staff.operatorId, { active: true })).toMatchObject({
      status: 200,
      body: { active: true },
    });
    expect(await scanProbe(staff.token, staff.gateSessionId)).toMatchObject({
      status: 401,
      body: { code: "unauthenticated" },
    });
    const reactivation = (await auditEntries(staff.operatorId, "operator.update")).find(
      (entry) => JSON.parse(entry.details).active?.to === true,
    );
    expect(JSON.parse(reactivation?.details ?? "{}")).toEqual({ active: { from: false, to: true } });

    const fresh = await login(staff.username, TEST_PASSWORD);
    expect(fresh.status).toBe(200);
    // The old session stays closed; the new token opens a new one and scans.
    expect(await scanProbe(fresh.body.operator_token, staff.gateSessionId)).toMatchObject({
      status: 403,
      body: { code: "session_invalid" },
    });
    const device = await registeredDevice({ kind: "gate", location_id: "loc-revocation" });
    const session = await openSession(fresh.body.operator_token, { device_id: device });
    expect(session.status).toBe(201);
    expect((await scanProbe(fresh.body.operator_token, session.body.session_id)).body.result).toBe(
      "accepted",
    );
  });

  it("20 requests in flight while a deactivation commits: none is a 5xx; every one after it is 401", async ({
    expect,
  }) => {
    const staff = await staffOnShift(["pos"]);
    expect((await lookupProbe(staff.token, staff.posSessionId)).status).toBe(200);
    const before = Array.from({ length: 10 }, () => lookupProbe(staff.token, staff.posSessionId));
    const deactivation = patchOperator(staff.operatorId, { active: false });
    const during = Array.from({ length: 10 }, () => lookupProbe(staff.token, staff.posSessionId));
    const answers = await Promise.all([...before, ...during]);
    expect((await deactivation).status).toBe(200);

    for (const answer of answers) {
      // Served before the commit (200), or refused after it: the token (401) or the closed session (403).
      if (answer.status === 200) continue;
      expect([401, 403]).toContain(answer.status);
      expect(answer.body.code).toBe(answer.status === 401 ? "unauthenticated" : "session_invalid");
    }
    const after = await Promise.all(
      Array.from({ length: 20 }, () => lookupProbe(staff.token, staff.posSessionId)),
    );
    for (const answer of after)
      expect(answer).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
  });
});

describe("POST /admin/operators/{id}/password", () => {
  it("refuses the old token and the old password, lets the new one in, closes sessions, audits no secret", async ({
    expect,
  }) => {
    const staff = await staffOnShift(["gate"]);
    const admin = await adminOperator();
    expect((await scanProbe(staff.token, staff.gateSessionId)).body.result).toBe("accepted");

    const reset = await resetPassword(staff.operatorId, { password: NEW_PASSWORD });
    expect(reset).toMatchObject({ status: 200, body: { operator_id: staff.operatorId, active: true } });
    expect(Object.keys(reset.body).sort()).toEqual(
      ["active", "created_at", "event_ids", "operator_id", "roles", "updated_at", "username"].sort(),
    );

    // Still active, so only the credential version tells the old token apart.
    expect(await scanProbe(staff.token, staff.gateSessionId)).toMatchObject({
      status: 401,
      body: { code: "unauthenticated" },
    });
    expect(await login(staff.username, TEST_PASSWORD)).toMatchObject({
      status: 401,
      body: { code: "invalid_credentials" },
    });
    const fresh = await login(staff.username, NEW_PASSWORD);
    expect(fresh.status).toBe(200);
    const device = await registeredDevice({ kind: "gate", location_id: "loc-revocation" });
    const session = await openSession(fresh.body.operator_token, { device_id: device });
    expect(session.status).toBe(201);
    expect((await scanProbe(fresh.body.operator_token, session.body.session_id)).body.result).toBe(
      "accepted",
    );

    const [closed] = await sessionRows([staff.gateSessionId]);
    const [entry, ...more] = await auditEntries(staff.operatorId, "operator.password_reset");
    expect(more).toHaveLength(0);
    expect(entry).toMatchObject({ actor: admin.operatorId });
    // The sessions closed at the reset's own time, which its audit request carries (see requestedTs).
    const requested = await requestedTs(entry?.id);
    expect(closed?.closedAt).toBe(requested);
    expect(Date.parse(entry?.ts ?? "")).toBeGreaterThanOrEqual(Date.parse(closed?.closedAt ?? ""));
    expect(JSON.parse(entry?.details ?? "{}")).toEqual({ password_reset: true, sessions_closed: true });
    const [row] = await db().select().from(operators).where(eq(operators.id, staff.operatorId));
    expect(row?.credentialVersion).toBe(2);
    for (const secret of [NEW_PASSWORD, TEST_PASSWORD, row?.passwordHash ?? "never-empty"]) {
      expect(entry?.details).not.toContain(secret);
      expect(JSON.stringify(reset.body)).not.toContain(secret);
    }
  });

  it("404 for an unknown operator; 400 for a short, missing or padded password", async ({ expect }) => {
    expect(await resetPassword("opr_doesnotexist", { password: NEW_PASSWORD })).toMatchObject({
      status: 404,
      body: { code: "not_found" },
    });
    const staff = await operatorToken(["gate"]);
    for (const body of [{}, { password: "short" }, { password: NEW_PASSWORD, username: "x" }, { pw: "x" }]) {
      const answer = await resetPassword(staff.operatorId, body);
      expect(answer, JSON.stringify(body)).toMatchObject({
        status: 400,
        body: { code: "validation_failed" },
      });
      expect(answer.body.errors?.length).toBeGreaterThan(0);
    }
    expect(await login(staff.username, TEST_PASSWORD)).toMatchObject({ status: 200 });
  });
});

describe("PATCH /admin/operators/{id}: roles and events", () => {
  it("removing gate makes the next scan 403 forbidden (not session_invalid); giving it back restores it", async ({
    expect,
  }) => {
    const staff = await staffOnShift(["gate"]);
    expect((await scanProbe(staff.token, staff.gateSessionId)).body.result).toBe("accepted");

    expect(await patchOperator(staff.operatorId, { roles: ["analyst"] })).toMatchObject({
      status: 200,
      body: { roles: ["analyst"], active: true },
    });
    expect(await scanProbe(staff.token, staff.gateSessionId)).toMatchObject({
      status: 403,
      body: { code: "forbidden" },
    });
    // The same token now carries the analyst's access: the record decides, not the token's claims.
    const report = await callJson("GET", "/reports/redemptions?from=2026-01-01&to=2026-01-02", {
      token: staff.token,
    });
    expect(report.status).toBe(200);

    // A change of roles revokes nothing: the token and the session work again with the role back.
    expect((await patchOperator(staff.operatorId, { roles: ["gate"] })).status).toBe(200);
    expect((await scanProbe(staff.token, staff.gateSessionId)).body.result).toBe("accepted");
    const removal = (await auditEntries(staff.operatorId, "operator.update")).find((entry) =>
      JSON.parse(entry.details).roles?.to.includes("analyst"),
    );
    expect(JSON.parse(removal?.details ?? "{}")).toEqual({ roles: { from: ["gate"], to: ["analyst"] } });
  });

  it("adding supervisor lets the same token refund above the approval limit", async ({ expect }) => {
    const till = await posTill();
    const wallet = await fundedWallet(6_000);
    const sale = await deduct(till, await walletQr(wallet.token), 6_000);
    expect(sale.status).toBe(201);
    const id = sale.body.transaction_id;
    expect(await refund(till, id)).toMatchObject({ status: 403, body: { code: "approval_required" } });

    expect((await patchOperator(till.operatorId, { roles: ["pos", "supervisor"] })).status).toBe(200);
    expect(await refund(till, id)).toMatchObject({
      status: 201,
      body: { amount_cents: 6_000, reversal_of: id },
    });
  });

  it("a POS operator who loses an event can no longer open a POS session for it", async ({ expect }) => {
    const [kept, lost] = [uniqueEvent(), uniqueEvent()];
    const pos = await operatorToken(["pos"], [lost, kept]);
    const atLost = await registeredDevice({ kind: "pos", event_id: lost });
    const atKept = await registeredDevice({ kind: "pos", event_id: kept });
    expect((await openSession(pos.token, { device_id: atLost })).status).toBe(201);

    expect(await patchOperator(pos.operatorId, { event_ids: [kept] })).toMatchObject({
      status: 200,
      body: { event_ids: [kept] },
    });
    expect(await openSession(pos.token, { device_id: atLost })).toMatchObject({
      status: 403,
      body: { code: "forbidden" },
    });
    expect((await openSession(pos.token, { device_id: atKept })).status).toBe(201);
  });

  it("a POS operator who loses an event can no longer sell there through a session opened before", async ({
    expect,
  }) => {
    // The contract: a POS session needs an event in the operator's event_ids, and a change of event_ids
    // takes effect within 5 s; a session opened before the change is no exception.
    const [kept, lost] = [uniqueEvent(), uniqueEvent()];
    const staff = await staffOnShift(["pos"], [lost, kept]);
    const wallet = await fundedWallet(1_000);
    const till = { ...staff, sessionId: staff.posSessionId, deviceId: "", eventId: lost };
    expect((await deduct(till, await walletQr(wallet.token), 100)).status).toBe(201);

    expect((await patchOperator(staff.operatorId, { event_ids: [kept] })).status).toBe(200);
    const lookup = await lookupProbe(staff.token, staff.posSessionId);
    expect(lookup.status).toBe(403);
    expect(["session_invalid", "forbidden"]).toContain(lookup.body.code);
    const sale = await deduct(till, await walletQr(wallet.token), 100);
    expect(sale.status).toBe(403);
    expect(["session_invalid", "forbidden"]).toContain(sale.body.code);
  });
});

describe("PATCH /admin/operators/{id}: who may change what", () => {
  it("an admin cannot deactivate themselves or drop their own admin role (403 forbidden)", async ({
    expect,
  }) => {
    const admin = await operatorToken(["admin"]);
    for (const body of [{ active: false }, { roles: ["analyst"] }, { active: false, roles: ["admin"] }]) {
      expect(await patchOperator(admin.operatorId, body, admin.token), JSON.stringify(body)).toMatchObject({
        status: 403,
        body: { code: "forbidden" },
      });
    }
    expect(await auditEntries(admin.operatorId, "operator.update")).toHaveLength(0);
    // Keeping admin while adding a role is their own business.
    expect(
      await patchOperator(admin.operatorId, { roles: ["admin", "supervisor"] }, admin.token),
    ).toMatchObject({ status: 200, body: { roles: ["admin", "supervisor"], active: true } });
    expect((await adminProbe(admin.token)).status).toBe(200);
  });

  it("404 not_found for an unknown operator", async ({ expect }) => {
    expect(await patchOperator("opr_doesnotexist", { active: false })).toMatchObject({
      status: 404,
      body: { code: "not_found" },
    });
  });

  it("a non-admin is 403 forbidden on every operator route, and changes nothing", async ({ expect }) => {
    const target = await staffOnShift(["gate"]);
    for (const roles of [["pos", "supervisor"], ["analyst"], ["gate"]] as OperatorRole[][]) {
      const caller = await operatorToken(roles, [uniqueEvent()]);
      const forbidden = { status: 403, body: { code: "forbidden" } };
      expect(await patchOperator(target.operatorId, { active: false }, caller.token)).toMatchObject(
        forbidden,
      );
      expect(await resetPassword(target.operatorId, { password: NEW_PASSWORD }, caller.token)).toMatchObject(
        forbidden,
      );
      expect(await adminProbe(caller.token)).toMatchObject(forbidden);
      const created = await callJson("POST", "/admin/operators", {
        token: caller.token,
        body: { username: `x-${crypto.randomUUID().slice(0, 8)}`, password: NEW_PASSWORD, roles: ["admin"] },
      });
      expect(created).toMatchObject(forbidden);
    }
    expect((await scanProbe(target.token, target.gateSessionId)).body.result).toBe("accepted");
  });

  it.each([
    ["an empty patch", {}],
    ["an unknown field", { active: false, admin: true }],
    ["an unknown role", { roles: ["root"] }],
    ["no roles at all", { roles: [] }],
    ["active as a string", { active: "false" }],
    ["event_ids as a string", { event_ids: "evt-1" }],
    ["an empty event id", { event_ids: [""] }],
    ["a password in a patch", { password: NEW_PASSWORD }],
  ])("400 validation_failed for %s, and the operator is unchanged", async (_name, body) => {
    const { expect } = await import("vitest");
    const target = await operatorToken(["gate"]);
    const answer = await patchOperator(target.operatorId, body);
    expect(answer).toMatchObject({ status: 400, body: { code: "validation_failed" } });
    expect(answer.body.errors?.length).toBeGreaterThan(0);
    const [row] = await db().select().from(operators).where(eq(operators.id, target.operatorId));
    expect(row).toMatchObject({ active: true, roles: ["gate"], credentialVersion: 1 });
  });
});

describe("GET /admin/operators", () => {
  it("pages through every operator in id order with limit and next_cursor, never a password", async ({
    expect,
  }) => {
    const admin = await adminToken();
    const created: string[] = [];
    for (let i = 0; i < 5; i++) {
      const answer = await callJson<OperatorBody>("POST", "/admin/operators", {
        token: admin,
        body: {
          username: `list-${i}-${crypto.randomUUID().slice(0, 8)}`,
          password: NEW_PASSWORD,
          roles: ["gate"],
        },
      });
      expect(answer.status).toBe(201);
      created.push(answer.body.operator_id);
    }
    const hashes = (await db().select().from(operators).where(inArray(operators.id, created))).map(
      (row) => row.passwordHash,
    );

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { status: number; body: { operators: OperatorBody[]; next_cursor: string | null } } =
        await callJson("GET", `/admin/operators?limit=2${cursor ? `&cursor=${cursor}` : ""}`, {
          token: admin,
        });
      expect(page.status).toBe(200);
      expect(page.body.operators.length).toBeLessThanOrEqual(2);
      const text = JSON.stringify(page.body);
      expect(text).not.toMatch(/password/i);
      for (const hash of hashes) expect(text).not.toContain(hash);
      seen.push(...page.body.operators.map((operator) => operator.operator_id));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor !== null && pages < 100);

    expect(cursor).toBeNull();
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...seen].sort());
    for (const id of created) expect(seen).toContain(id);
    const [total] = await db().select({ n: sql<number>`count(*)` }).from(operators);
    expect(seen).toHaveLength(total?.n ?? -1);
  });

  it("400 validation_failed for a limit out of range", async ({ expect }) => {
    const admin = await adminToken();
    for (const query of ["limit=0", "limit=201", "limit=two", "cursor="]) {
      expect(await callJson("GET", `/admin/operators?${query}`, { token: admin }), query).toMatchObject({
        status: 400,
        body: { code: "validation_failed" },
      });
    }
  });
});

/** What an operator's token itself proves, as the middleware verifies it. */
async function claimsOf(token: string) {
  const verified = await verifyOperatorToken(loadConfig(env), token);
  if (!verified.ok) throw new Error(`operator token refused: ${verified.code}`);
  return verified.claims;
}

describe("another isolate's change reaches this one within 5 s", () => {
  it("the revocation bound stays inside the contract's 5 s", ({ expect }) => {
    // A request checks the operator record before its session: an old token is refused once this
    // isolate re-reads the record; the session cache only matters for the operator's new tokens, and
    // only up to its own bound. Neither may exceed the contract's 5 s.
    expect(OPERATOR_RECORD_CACHE_MS).toBeLessThanOrEqual(5_000);
    expect(SESSION_CACHE_MS).toBeLessThanOrEqual(5_000);
  });

  it.each([
    ["a deactivation", { active: false }],
    ["a password reset", { credentialVersion: sql<number>`${operators.credentialVersion} + 1` }],
  ])(
    "%s made elsewhere: accepted at now + 1 ms, refused at now + OPERATOR_RECORD_CACHE_MS",
    async (_name, change) => {
      const { expect } = await import("vitest");
      const gate = await operatorToken(["gate"]);
      const claims = await claimsOf(gate.token);
      const now = Date.now();
      expect(await currentOperator(db(), claims, now)).toEqual({
        operatorId: gate.operatorId,
        roles: ["gate"],
        eventIds: [],
      });
      // What another isolate's PATCH writes; this isolate's copy is not forgotten.
      await db().update(operators).set(change).where(eq(operators.id, gate.operatorId));

      expect(await currentOperator(db(), claims, now + 1)).toBeDefined();
      expect(await currentOperator(db(), claims, now + OPERATOR_RECORD_CACHE_MS - 1)).toBeDefined();
      expect(await currentOperator(db(), claims, now + OPERATOR_RECORD_CACHE_MS)).toBeUndefined();
    },
  );

  it("a change of roles made elsewhere: old roles at now + 1 ms, new ones at now + OPERATOR_RECORD_CACHE_MS", async ({
    expect,
  }) => {
    const pos = await operatorToken(["pos"], ["evt-a"]);
    const claims = await claimsOf(pos.token);
    const now = Date.now();
    expect(await currentOperator(db(), claims, now)).toMatchObject({ roles: ["pos"], eventIds: ["evt-a"] });
    await db()
      .update(operators)
      .set({ roles: ["gate"], eventIds: [] })
      .where(eq(operators.id, pos.operatorId));
    expect(await currentOperator(db(), claims, now + 1)).toMatchObject({
      roles: ["pos"],
      eventIds: ["evt-a"],
    });
    // The token still says pos and evt-a; the record wins.
    expect(await currentOperator(db(), claims, now + OPERATOR_RECORD_CACHE_MS)).toEqual({
      operatorId: pos.operatorId,
      roles: ["gate"],
      eventIds: [],
    });
  });

  it("a session closed by a revocation is refused by an isolate that cached it open within SESSION_CACHE_MS", async ({
    expect,
  }) => {
    const staff = await staffOnShift(["gate"]);
    const check = (nowMs: number) =>
      requireOpenSession(db(), {
        sessionId: staff.gateSessionId,
        operatorId: staff.operatorId,
        kind: "gate",
        now: new Date(nowMs),
      });
    const now = Date.now();
    // Cached as open, as by an isolate that served this operator a scan just before the change.
    expect((await check(now)).session.closed_at).toBeNull();
    expect((await patchOperator(staff.operatorId, { active: false })).status).toBe(200);
    await expect(check(now + SESSION_CACHE_MS)).rejects.toMatchObject({ code: "session_invalid" });
  });
});

describe("tokens signed before credential versions existed (no cv claim)", () => {
  async function legacyToken(operatorId: string, roles: OperatorRole[]) {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ operator_id: operatorId, roles, event_ids: [] })
      .setProtectedHeader({ alg: "HS256", typ: OPERATOR_TOKEN_TYP })
      .setSubject(operatorId)
      .setIssuer(env.SERVICE_ISSUER ?? "")
      .setAudience(OPERATOR_TOKEN_AUDIENCE)
      .setIssuedAt(now)
      .setExpirationTime(now + 3_600)
      .sign(new TextEncoder().encode(env.OPERATOR_JWT_SECRET));
  }

  it("count as version 1: accepted until a revocation, refused after it", async ({ expect }) => {
    const admin = await operatorToken(["admin"]);
    const legacy = await legacyToken(admin.operatorId, ["admin"]);
    expect((await adminProbe(legacy)).status).toBe(200);

    expect((await resetPassword(admin.operatorId, { password: NEW_PASSWORD })).status).toBe(200);
    expect(await adminProbe(legacy)).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
    expect(await adminProbe(admin.token)).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
  });

  it("carry no more access than the operator record gives, whatever roles they claim", async ({ expect }) => {
    const gate = await operatorToken(["gate"]);
    const claimsAdmin = await legacyToken(gate.operatorId, ["admin"]);
    expect(await adminProbe(claimsAdmin)).toMatchObject({ status: 403, body: { code: "forbidden" } });
  });
});
