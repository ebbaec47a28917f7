import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, it } from "vitest";
import { auditEntryHash, verifyAuditChain } from "../../src/db/audit";
import { getDb } from "../../src/db/client";
import { auditLog } from "../../src/db/schema";
import { appendAudit } from "../../src/queues/audit-chain";
import type { AuditEntry } from "../../src/types/domain";
import { auditRequests, auditSettled } from "../support/audit";
import { operatorToken, TEST_PASSWORD } from "../support/fixtures";
import { callJson } from "../support/http";
import { adminOperator, openSession, registeredDevice } from "../support/staff";

const db = () => getDb(env.DB);
const FAR_FUTURE = "2999-01-01T00:00:00Z";

interface AuditPage {
  entries: AuditEntry[];
  next_cursor: string | null;
}

/** Every entry with ts ≥ `from`, following next_cursor with small pages so paging is exercised. */
async function auditSince(token: string, from: string, limit = 7): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1_000; page++) {
    const query = new URLSearchParams({ from, to: FAR_FUTURE, limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    const response = await callJson<AuditPage>("GET", `/admin/audit?${query}`, { token });
    if (response.status !== 200) throw new Error(`audit listing failed: ${response.status}`);
    entries.push(...response.body.entries);
    cursor = response.body.next_cursor;
    if (!cursor) return entries;
  }
  throw new Error("too many pages");
}

async function tailSeq(): Promise<number> {
  const row = await env.DB.prepare("SELECT coalesce(max(seq), 0) AS seq FROM audit_log").first<{
    seq: number;
  }>();
  return row?.seq ?? 0;
}

async function verify() {
  const admin = await adminOperator();
  return callJson<Record<string, unknown>>("GET", "/admin/audit/verify", { token: admin.token });
}

describe("audit entries for staff actions", () => {
  it("records logins, failed logins and admin changes, chained by the consumer, without secrets", async ({
    expect,
  }) => {
    const admin = await adminOperator();
    const since = new Date().toISOString();

    const gate = await operatorToken(["gate"]);
    const failed = await callJson("POST", "/operators/login", {
      body: { username: gate.username, password: "not-the-password" },
    });
    expect(failed.status).toBe(401);
    const unknownUser = `ghost-${crypto.randomUUID().slice(0, 8)}`;
    await callJson("POST", "/operators/login", { body: { username: unknownUser, password: "whatever-123" } });

    const newPassword = `secret-${crypto.randomUUID()}`;
    const operator = await callJson<{ operator_id: string }>("POST", "/admin/operators", {
      token: admin.token,
      body: { username: `op-${crypto.randomUUID().slice(0, 8)}`, password: newPassword, roles: ["pos"] },
    });
    expect(operator.status).toBe(201);
    const product = await callJson<{ id: string }>("POST", "/admin/products", {
      token: admin.token,
      body: { name: "Audit Pass", price_cents: 100, sellable: 5, functions: [{ function: "bus", uses: 1 }] },
    });
    const patched = await callJson("PATCH", `/admin/products/${product.body.id}`, {
      token: admin.token,
      body: { sellable: 9 },
    });
    expect(patched.status).toBe(200);
    const deviceId = await registeredDevice({ kind: "gate" });
    await callJson("PATCH", `/admin/devices/${deviceId}`, { token: admin.token, body: { active: false } });
    await callJson("PATCH", `/admin/devices/${deviceId}`, { token: admin.token, body: { active: true } });
    const session = await openSession(gate.token, { device_id: deviceId });
    await callJson("DELETE", `/validators/sessions/${session.body.session_id}`, { token: gate.token });

    // The consumer chains each entry a moment after its action answered.
    await auditSettled();
    const entries = await auditSince(admin.token, since);
    const mine = entries.filter(
      (entry) =>
        [gate.operatorId, gate.username, unknownUser].includes(entry.actor) ||
        [operator.body.operator_id, product.body.id, deviceId, session.body.session_id].includes(
          entry.target ?? "",
        ),
    );
    // The queue promises no order, so the chain holds them in the order the consumer got them.
    const pairs = (list: AuditEntry[]) => list.map((entry) => `${entry.action} ${entry.actor}`).sort();
    expect(pairs(mine)).toEqual(
      [
        ["operator.login", gate.operatorId],
        ["operator.login_failed", gate.username],
        ["operator.login_failed", unknownUser],
        ["operator.create", admin.operatorId],
        ["product.create", admin.operatorId],
        ["product.update", admin.operatorId],
        ["device.register", admin.operatorId],
        ["device.enroll", `device:${deviceId}`],
        ["device.update", admin.operatorId],
        ["device.update", admin.operatorId],
        ["session.open", gate.operatorId],
        ["session.close", gate.operatorId],
      ]
        .map(([action, actor]) => `${action} ${actor}`)
        .sort(),
    );
    const one = (action: string, actor: string) =>
      mine.find((entry) => entry.action === action && entry.actor === actor);
    expect(one("operator.login_failed", gate.username)?.details).toEqual({ reason: "wrong_password" });
    expect(one("operator.login_failed", unknownUser)).toMatchObject({
      target: null,
      details: { reason: "unknown_username" },
    });
    expect(one("product.update", admin.operatorId)?.details).toEqual({ sellable: 9 });
    expect(one("device.enroll", `device:${deviceId}`)?.details).toEqual({
      key_alg: "ES256",
      replaced_key: false,
    });
    expect(
      mine
        .filter((entry) => entry.action === "device.update")
        .map((entry) => entry.details)
        .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    ).toEqual([{ active: { from: false, to: true } }, { active: { from: true, to: false } }]);
    expect(one("session.open", gate.operatorId)).toMatchObject({
      target: session.body.session_id,
      details: { device_id: deviceId },
    });

    // Chain order: seq strictly increasing by one overall, and ts never decreasing.
    for (let i = 1; i < entries.length; i++) {
      expect(entries[i]?.seq).toBe((entries[i - 1]?.seq ?? 0) + 1);
      expect(entries[i]?.prev_hash).toBe(entries[i - 1]?.hash);
      expect((entries[i]?.ts ?? "") >= (entries[i - 1]?.ts ?? "")).toBe(true);
    }
    const text = JSON.stringify(entries);
    expect(text).not.toContain(newPassword);
    expect(text).not.toContain(TEST_PASSWORD);
    expect(text).not.toContain("not-the-password");
  });

  it("verify answers ok with the number of entries", async ({ expect }) => {
    await operatorToken(["gate"]);
    await auditSettled();
    const result = await verify();
    expect(result.status).toBe(200);
    expect(result.body).toEqual({ ok: true, entries: await tailSeq() });
  });

  it("20 concurrent appends make 20 linked entries", async ({ expect }) => {
    // Nothing else appending meanwhile, so the 20 take the next 20 positions.
    await auditSettled();
    const before = await tailSeq();
    const now = new Date();
    const appended = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        appendAudit(
          db(),
          { actor: "test", action: "test.concurrent", target: `t-${i}`, details: { i } },
          now,
        ),
      ),
    );
    expect(new Set(appended.map((entry) => entry.seq))).toEqual(
      new Set(Array.from({ length: 20 }, (_, i) => before + 1 + i)),
    );
    expect(await tailSeq()).toBe(before + 20);
    expect(await verifyAuditChain(db())).toEqual({ ok: true, entries: before + 20 });
  });

  it("verifies across several pages", async ({ expect }) => {
    await appendAudit(db(), { actor: "test", action: "test.paging" }, new Date());
    const total = await tailSeq();
    expect(await verifyAuditChain(db(), 3)).toEqual({ ok: true, entries: total });
  });
});

describe("the audit log is append-only", () => {
  it("the database refuses UPDATE, DELETE and an insert that does not link to the tail", async ({
    expect,
  }) => {
    const entry = await appendAudit(db(), { actor: "test", action: "test.immutable" }, new Date());
    await expect(
      env.DB.prepare("UPDATE audit_log SET details = '{}' WHERE seq = ?").bind(entry.seq).run(),
    ).rejects.toThrow(/audit_log_append_only/);
    await expect(env.DB.prepare("DELETE FROM audit_log WHERE seq = ?").bind(entry.seq).run()).rejects.toThrow(
      /audit_log_append_only/,
    );
    const forged = env.DB.prepare(
      "INSERT INTO audit_log (seq, id, ts, actor, action, target, details, prev_hash, hash) VALUES (?, ?, ?, 'x', 'x', NULL, '{}', ?, ?)",
    );
    // A gap in seq, and a link to an entry that is not the tail.
    await expect(
      forged.bind(entry.seq + 2, "aud_forged1", entry.ts, entry.hash, "f".repeat(64)).run(),
    ).rejects.toThrow(/audit_log_chain_conflict/);
    await expect(
      forged.bind(entry.seq + 1, "aud_forged2", entry.ts, entry.prev_hash, "e".repeat(64)).run(),
    ).rejects.toThrow(/audit_log_chain_conflict|UNIQUE/);
    expect((await verify()).body).toMatchObject({ ok: true });
  });

  it("verify reports the first entry edited behind the API's back", async ({ expect }) => {
    await appendAudit(db(), { actor: "test", action: "test.before" }, new Date());
    const victim = await appendAudit(
      db(),
      { actor: "test", action: "test.victim", details: { amount: 1 } },
      new Date(),
    );
    await appendAudit(db(), { actor: "test", action: "test.after" }, new Date());
    const original = await env.DB.prepare("SELECT details FROM audit_log WHERE seq = ?")
      .bind(victim.seq)
      .first<{ details: string }>();
    const noUpdateTrigger = env.TEST_MIGRATIONS.flatMap((migration) => migration.queries).find((query) =>
      query.includes("TRIGGER IF NOT EXISTS audit_log_no_update"),
    );
    expect(noUpdateTrigger).toBeDefined();

    await env.DB.exec("DROP TRIGGER audit_log_no_update");
    try {
      await env.DB.prepare(`UPDATE audit_log SET details = '{"amount":1000}' WHERE seq = ?`)
        .bind(victim.seq)
        .run();
      const tampered = await verify();
      expect(tampered.status).toBe(200);
      expect(tampered.body).toEqual({
        ok: false,
        entries_checked: victim.seq - 1,
        broken_at: { seq: victim.seq, id: victim.id, reason: "hash_mismatch" },
      });
    } finally {
      await env.DB.prepare("UPDATE audit_log SET details = ? WHERE seq = ?")
        .bind(original?.details, victim.seq)
        .run();
      await env.DB.prepare(noUpdateTrigger ?? "").run();
    }
    expect((await verify()).body).toMatchObject({ ok: true });
    await expect(
      env.DB.prepare("UPDATE audit_log SET details = '{}' WHERE seq = ?").bind(victim.seq).run(),
    ).rejects.toThrow(/audit_log_append_only/);
  });
});

type AuditRow = typeof auditLog.$inferSelect;

async function storedEntry(seq: number): Promise<AuditRow> {
  const [row] = await db().select().from(auditLog).where(eq(auditLog.seq, seq));
  if (!row) throw new Error(`no audit entry ${seq}`);
  return row;
}

/** `row` with `changes` and its hash recomputed: a rewrite by someone who knows how entries are hashed. */
async function rehashed(row: AuditRow, changes: Partial<AuditRow>): Promise<AuditRow> {
  const { hash: _stale, ...unhashed } = { ...row, ...changes };
  return { ...unhashed, hash: await auditEntryHash(unhashed) };
}

/** Three fresh entries at the tail, as stored: the middle one is the one a test tampers with. */
async function threeEntries(action: string): Promise<[AuditRow, AuditRow, AuditRow]> {
  // The admin logs in (an audit entry) on first use: do it now, and let the consumer chain its entries,
  // so that nothing appends while the chain is being tampered with.
  await adminOperator();
  await auditSettled();
  const appended: AuditRow[] = [];
  for (const position of ["before", "victim", "after"]) {
    const entry = await appendAudit(db(), { actor: "test", action: `${action}.${position}` }, new Date());
    appended.push(await storedEntry(entry.seq));
  }
  const [before, victim, after] = appended;
  if (!before || !victim || !after) throw new Error("three entries were appended");
  return [before, victim, after];
}

/**
 * Drops the named audit_log triggers while `tamper` runs and recreates them from the migrations however it
 * ends. Storage is shared by the tests of a file, so `tamper` must also put the rows back.
 */
async function withTriggersDropped(triggers: string[], tamper: () => Promise<void>): Promise<void> {
  const queries = env.TEST_MIGRATIONS.flatMap((migration) => migration.queries);
  const definitions = triggers.map((name) => {
    const definition = queries.find((query) => query.includes(`TRIGGER IF NOT EXISTS ${name}`));
    if (!definition) throw new Error(`no migration creates ${name}`);
    return definition;
  });
  for (const name of triggers) await env.DB.exec(`DROP TRIGGER ${name}`);
  try {
    await tamper();
  } finally {
    for (const definition of definitions) await env.DB.prepare(definition).run();
  }
}

describe("verify names each kind of broken link", () => {
  // Each tamper recomputes the hash of what it rewrote, as someone who knows the scheme would: the
  // hash_mismatch check passes, and the break must be named by the check under test.

  it("an entry removed from the middle is a seq_gap, even with its successor re-linked and re-hashed", async ({
    expect,
  }) => {
    const [before, victim, after] = await threeEntries("test.removed");
    await withTriggersDropped(
      ["audit_log_no_delete", "audit_log_no_update", "audit_log_append_links_tail"],
      async () => {
        try {
          await env.DB.prepare("DELETE FROM audit_log WHERE seq = ?").bind(victim.seq).run();
          const relinked = await rehashed(after, { prevHash: before.hash });
          await db().update(auditLog).set(relinked).where(eq(auditLog.seq, after.seq));
          expect((await verify()).body).toEqual({
            ok: false,
            entries_checked: before.seq,
            broken_at: { seq: after.seq, id: after.id, reason: "seq_gap" },
          });
        } finally {
          // The successor first: until it is unlinked, the removed entry's prev_hash is taken (UNIQUE).
          await db().update(auditLog).set(after).where(eq(auditLog.seq, after.seq));
          await db().insert(auditLog).values(victim).onConflictDoNothing();
        }
      },
    );
    expect((await verify()).body).toEqual({ ok: true, entries: await tailSeq() });
  });

  it("an entry edited and re-hashed is a prev_hash_mismatch at the entry after it", async ({ expect }) => {
    const [, victim, after] = await threeEntries("test.relinked");
    await withTriggersDropped(["audit_log_no_update"], async () => {
      try {
        const edited = await rehashed(victim, { details: `{"amount":1000}` });
        await db().update(auditLog).set(edited).where(eq(auditLog.seq, victim.seq));
        expect((await verify()).body).toEqual({
          ok: false,
          entries_checked: victim.seq,
          broken_at: { seq: after.seq, id: after.id, reason: "prev_hash_mismatch" },
        });
      } finally {
        await db().update(auditLog).set(victim).where(eq(auditLog.seq, victim.seq));
      }
    });
    expect((await verify()).body).toEqual({ ok: true, entries: await tailSeq() });
  });

  it("an entry re-dated before the one it follows is ts_regressed", async ({ expect }) => {
    const [before, victim, after] = await threeEntries("test.backdated");
    const backdated = new Date(Date.parse(before.ts) - 60_000).toISOString();
    await withTriggersDropped(["audit_log_no_update"], async () => {
      try {
        // The same instant as the entry before is no regression (appends within a millisecond share
        // one): the first break is then only the next entry's link to the rehashed one.
        await db()
          .update(auditLog)
          .set(await rehashed(victim, { ts: before.ts }))
          .where(eq(auditLog.seq, victim.seq));
        expect((await verify()).body).toEqual(
          // Appended within the same millisecond already: the entry, and so its hash, is unchanged.
          victim.ts === before.ts
            ? { ok: true, entries: await tailSeq() }
            : {
                ok: false,
                entries_checked: victim.seq,
                broken_at: { seq: after.seq, id: after.id, reason: "prev_hash_mismatch" },
              },
        );
        await db()
          .update(auditLog)
          .set(await rehashed(victim, { ts: backdated }))
          .where(eq(auditLog.seq, victim.seq));
        expect((await verify()).body).toEqual({
          ok: false,
          entries_checked: before.seq,
          broken_at: { seq: victim.seq, id: victim.id, reason: "ts_regressed" },
        });
      } finally {
        await db().update(auditLog).set(victim).where(eq(auditLog.seq, victim.seq));
      }
    });
    expect((await verify()).body).toEqual({ ok: true, entries: await tailSeq() });
  });
});

describe("GET /admin/audit", () => {
  it("pages by cursor without gaps or repeats", async ({ expect }) => {
    const admin = await adminOperator();
    const since = new Date().toISOString();
    for (let i = 0; i < 5; i++) {
      await appendAudit(db(), { actor: "test", action: "test.page", target: `p-${i}` }, new Date());
    }
    const small = await auditSince(admin.token, since, 2);
    const large = await auditSince(admin.token, since, 500);
    expect(small.map((entry) => entry.seq)).toEqual(large.map((entry) => entry.seq));
    expect(small.filter((entry) => entry.action === "test.page").map((entry) => entry.target)).toEqual([
      "p-0",
      "p-1",
      "p-2",
      "p-3",
      "p-4",
    ]);
  });

  it("filters by time range and accepts offsets", async ({ expect }) => {
    const admin = await adminOperator();
    const entry = await appendAudit(db(), { actor: "test", action: "test.range" }, new Date());
    const ts = Date.parse(entry.ts);
    const inRange = new URLSearchParams({
      from: new Date(ts).toISOString(),
      to: new Date(ts + 1).toISOString(),
    });
    const hit = await callJson<AuditPage>("GET", `/admin/audit?${inRange}`, { token: admin.token });
    expect(hit.body.entries.map((e) => e.id)).toContain(entry.id);
    const before = new URLSearchParams({ from: "2000-01-01T02:00:00+02:00", to: new Date(ts).toISOString() });
    const miss = await callJson<AuditPage>("GET", `/admin/audit?${before}`, { token: admin.token });
    expect(miss.status).toBe(200);
    expect(miss.body.entries.map((e) => e.id)).not.toContain(entry.id);
  });

  it.for<[string, string]>([
    ["no range", ""],
    ["to before from", `from=${encodeURIComponent(FAR_FUTURE)}&to=2000-01-01T00:00:00Z`],
    ["a date that is not YYYY-MM-DD", "from=20260101&to=20270101"],
    ["a bad cursor", `from=2000-01-01T00:00:00Z&to=${encodeURIComponent(FAR_FUTURE)}&cursor=nope`],
    ["limit 0", `from=2000-01-01T00:00:00Z&to=${encodeURIComponent(FAR_FUTURE)}&limit=0`],
    ["limit over the maximum", `from=2000-01-01T00:00:00Z&to=${encodeURIComponent(FAR_FUTURE)}&limit=501`],
    ["a non-numeric limit", `from=2000-01-01T00:00:00Z&to=${encodeURIComponent(FAR_FUTURE)}&limit=ten`],
  ])("400 validation_failed for %s", async ([, query], { expect }) => {
    const admin = await adminOperator();
    const response = await callJson<{ code: string }>("GET", `/admin/audit?${query}`, { token: admin.token });
    expect(response.status).toBe(400);
    expect(response.body.code).toBe("validation_failed");
  });

  it("is for admins only", async ({ expect }) => {
    const analyst = await operatorToken(["analyst"]);
    const query = `from=2000-01-01T00:00:00Z&to=${encodeURIComponent(FAR_FUTURE)}`;
    expect((await callJson("GET", `/admin/audit?${query}`, { token: analyst.token })).status).toBe(403);
    expect((await callJson("GET", "/admin/audit/verify", { token: analyst.token })).status).toBe(403);
    expect((await callJson("GET", "/admin/audit/verify")).status).toBe(401);
  });
});

describe("sessions in the audit log", () => {
  it("a refused session open writes nothing", async ({ expect }) => {
    const gate = await operatorToken(["gate"]);
    const posDevice = await registeredDevice({ kind: "pos", event_id: "evt-audit" });
    await auditSettled();
    const before = { requested: (await auditRequests()).length, seq: await tailSeq() };
    expect((await openSession(gate.token, { device_id: posDevice })).status).toBe(403);
    // No request was committed with it (the outbox is where every entry starts), so none can be chained.
    expect((await auditRequests()).length).toBe(before.requested);
    expect(await auditRequests({ actor: gate.operatorId, action: "session.open" })).toEqual([]);
    expect(await tailSeq()).toBe(before.seq);
  });
});
