/// <reference types="vite/client" />
import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq, inArray } from "drizzle-orm";
import { describe, it } from "vitest";
import { commitAudited, verifyAuditChain } from "../../src/db/audit";
import { drainOutbox, OUTBOX_GRACE_SECONDS, outboxStatement } from "../../src/db/outbox";
import { auditLog, outbox } from "../../src/db/schema";
import { loadConfig } from "../../src/env";
import { createMailer } from "../../src/mail/create-mailer";
import { consumeEvents } from "../../src/queues/consumer";
import type { AuditRequested, EventMessage, ScanRejected } from "../../src/queues/messages";
import { auditRequests, auditSettled } from "../support/audit";
import { eventually } from "../support/eventually";
import { db } from "../support/fixtures";
import { callJson } from "../support/http";
import { adminOperator, uniqueDeviceId } from "../support/staff";

// One audit writer: a request commits a request for its entry with its effect (an `audit.requested` row in
// D1's outbox, in the same batch) and sends it; only the queue consumer appends to the hash chain. These
// tests try to break that: entries lost, doubled, written for effects that did not commit, or a request
// path that still waits on the chain.

let seq = 0;
const deliver = (bodies: unknown[]) =>
  consumeEvents(
    createMessageBatch(
      "passes-events",
      bodies.map((body) => ({ id: `q-${++seq}`, timestamp: new Date(), attempts: 1, body })),
    ),
    { db: db(), mailer: createMailer(loadConfig(env), db()) },
  );

async function tailSeq(): Promise<number> {
  const row = await env.DB.prepare("SELECT coalesce(max(seq), 0) AS seq FROM audit_log").first<{
    seq: number;
  }>();
  return row?.seq ?? 0;
}

const entriesWithId = (id: string) => db().select().from(auditLog).where(eq(auditLog.id, id));

const productBody = (name: string) => ({
  name,
  price_cents: 100,
  sellable: 5,
  functions: [{ function: "bus", uses: 1 }],
});

const requested = (): AuditRequested => ({
  type: "audit.requested",
  audit: {
    id: `aud_test_${crypto.randomUUID()}`,
    actor: "system:test",
    action: "test.fresh",
    target: null,
    details: {},
    ts: new Date().toISOString(),
  },
});

const rejectedScan = (): ScanRejected => ({
  type: "scan.rejected",
  scan_id: `scn_${crypto.randomUUID()}`,
  code: "token_replayed",
  ticket_code: "FLOOD",
  function: "bus",
  operator_id: "opr_flood",
  session_id: "ses_flood",
  ts: new Date().toISOString(),
});

/** The stored `audit.requested` message for the one entry requested about `target`. */
async function storedRequestFor(target: string): Promise<AuditRequested> {
  const [request, ...more] = await auditRequests({ target });
  if (!request || more.length > 0) throw new Error(`expected one audit request for ${target}`);
  const [row] = await db().select().from(outbox).where(eq(outbox.id, request.outbox_id));
  if (!row) throw new Error("the request's outbox row is gone");
  return JSON.parse(row.payload) as AuditRequested;
}

describe("audited admin actions: one request each, chained once by the consumer", () => {
  it("40 admin actions in parallel (device registrations and product creates) are each chained exactly once", async ({
    expect,
  }) => {
    const admin = await adminOperator();
    await auditSettled();
    const before = await tailSeq();
    const deviceIds = Array.from({ length: 20 }, () => uniqueDeviceId("gate"));
    const [devices, products] = await Promise.all([
      Promise.all(
        deviceIds.map((deviceId) =>
          callJson("POST", "/admin/devices", {
            token: admin.token,
            body: { device_id: deviceId, kind: "gate" },
          }),
        ),
      ),
      Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          callJson<{ id: string }>("POST", "/admin/products", {
            token: admin.token,
            body: productBody(`Parallel pass ${i}`),
          }),
        ),
      ),
    ]);
    expect(devices.map((answer) => answer.status)).toEqual(Array(20).fill(201));
    expect(products.map((answer) => answer.status)).toEqual(Array(20).fill(201));
    const productIds = products.map((answer) => answer.body.id);

    // Each action committed exactly one request with itself.
    for (const target of [...deviceIds, ...productIds]) {
      expect(await auditRequests({ target }), target).toHaveLength(1);
    }
    await auditSettled();
    const chained = await db()
      .select({ action: auditLog.action, target: auditLog.target })
      .from(auditLog)
      .where(inArray(auditLog.target, [...deviceIds, ...productIds]));
    expect(chained.map((entry) => `${entry.action} ${entry.target}`).sort()).toEqual(
      [
        ...deviceIds.map((id) => `device.register ${id}`),
        ...productIds.map((id) => `product.create ${id}`),
      ].sort(),
    );
    // Nothing else was appended, and the chain is whole.
    expect(await tailSeq()).toBe(before + 40);
    const verified = await callJson("GET", "/admin/audit/verify", { token: admin.token });
    expect(verified.body).toEqual({ ok: true, entries: before + 40 });
  });

  it("a redelivered audit.requested appends nothing: alone, twice in a batch, grouped with others, or drained again", async ({
    expect,
  }) => {
    const admin = await adminOperator();
    const created = await callJson<{ id: string }>("POST", "/admin/products", {
      token: admin.token,
      body: productBody("Redelivered pass"),
    });
    expect(created.status).toBe(201);
    await auditSettled();
    const message = await storedRequestFor(created.body.id);
    expect(await entriesWithId(message.audit.id)).toHaveLength(1);
    const before = await tailSeq();

    await deliver([message]);
    await deliver([message, message]);
    // A batch of audit-only messages is appended in one go; this one repeats an entry, so it falls back
    // to one by one, and only the fresh entry is appended.
    const fresh = requested();
    await deliver([message, fresh, message]);

    // The cron's drain sends a row again when its send seemed to fail: what it sends is the stored message.
    const sent: unknown[] = [];
    const capture = {
      send: async (body: unknown) => void sent.push(body),
      sendBatch: async (batch: Iterable<{ body: unknown }>) => {
        for (const { body } of batch) sent.push(body);
      },
    } as unknown as Queue<EventMessage>;
    await db()
      .update(outbox)
      .set({ sentAt: null })
      .where(eq(outbox.id, `audit.requested:${message.audit.id}`));
    await drainOutbox(db(), capture, new Date(Date.now() + (OUTBOX_GRACE_SECONDS + 1) * 1000));
    const drained = sent.filter(
      (body) => (body as Partial<AuditRequested>).audit?.id === message.audit.id,
    ) as AuditRequested[];
    expect(drained).toEqual([message]);
    await deliver(drained);

    expect(await entriesWithId(message.audit.id)).toHaveLength(1);
    expect(await entriesWithId(fresh.audit.id)).toHaveLength(1);
    expect(await tailSeq()).toBe(before + 1);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });

  it("an action whose batch fails (a duplicate) commits no request, so no entry", async ({ expect }) => {
    const admin = await adminOperator();
    const deviceId = uniqueDeviceId("gate");
    const register = () =>
      callJson<{ code?: string }>("POST", "/admin/devices", {
        token: admin.token,
        body: { device_id: deviceId, kind: "gate" },
      });
    expect((await register()).status).toBe(201);
    const again = await Promise.all(Array.from({ length: 5 }, register));
    expect(again.map((answer) => [answer.status, answer.body.code])).toEqual(
      Array(5).fill([409, "device_exists"]),
    );
    expect((await auditRequests({ target: deviceId })).map((request) => request.action)).toEqual([
      "device.register",
    ]);
    await auditSettled();
    const entries = await db().select().from(auditLog).where(eq(auditLog.target, deviceId));
    expect(entries.map((entry) => entry.action)).toEqual(["device.register"]);
  });

  it("details over the limit are refused before the effect commits", async ({ expect }) => {
    const markerId = `test.marker:${crypto.randomUUID()}`;
    const effect = outboxStatement(db(), { id: markerId, message: requested() }, new Date());
    await expect(
      commitAudited(
        db(),
        env.EVENTS,
        { actor: "system:test", action: "test.oversized", details: { blob: "x".repeat(9_000) } },
        new Date(),
        [effect],
      ),
    ).rejects.toThrow(/exceed/);
    expect(await db().select().from(outbox).where(eq(outbox.id, markerId))).toEqual([]);
  });

  it("a request whose send fails is still chained: the outbox keeps it for the drain", async ({ expect }) => {
    const refusing = {
      send: async () => {
        throw new Error("queue unavailable");
      },
    } as unknown as Queue<EventMessage>;
    const target = `target-${crypto.randomUUID()}`;
    // The send's failure is the outbox's to recover from, not the caller's.
    await commitAudited(db(), refusing, { actor: "system:test", action: "test.unsent", target }, new Date());
    const [request] = await auditRequests({ target });
    expect(request).toBeDefined();
    const [row] = await db()
      .select()
      .from(outbox)
      .where(eq(outbox.id, request?.outbox_id ?? ""));
    expect(row?.sentAt).toBeNull();

    // The minute's drain, once the row is past its grace period, sends it through the real queue.
    await drainOutbox(db(), env.EVENTS, new Date(Date.now() + (OUTBOX_GRACE_SECONDS + 1) * 1000));
    await auditSettled();
    expect(await entriesWithId(request?.id ?? "")).toHaveLength(1);
  });
});

describe("request paths never wait on the chain", () => {
  it("an admin action answers 201 while the chain refuses its entry, and the entry arrives once it accepts", async ({
    expect,
  }) => {
    const admin = await adminOperator();
    await auditSettled();
    const trigger = `test_refuse_${crypto.randomUUID().replaceAll("-", "")}`;
    // Every append of a product.create fails, as during an outage of the chain or a bug in the consumer.
    await env.DB.prepare(
      `CREATE TRIGGER ${trigger} BEFORE INSERT ON audit_log WHEN NEW.action = 'product.create' ` +
        `BEGIN SELECT RAISE(ABORT, 'chain closed for the test'); END`,
    ).run();
    let productId = "";
    try {
      const created = await callJson<{ id: string }>("POST", "/admin/products", {
        token: admin.token,
        body: productBody("Pass made while the chain is closed"),
      });
      expect(created.status).toBe(201);
      productId = created.body.id;
      expect(await auditRequests({ target: productId })).toHaveLength(1);
      // Long enough for the consumer to have tried (max_batch_timeout is 1 s) and failed.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(await db().select().from(auditLog).where(eq(auditLog.target, productId))).toEqual([]);
    } finally {
      await env.DB.prepare(`DROP TRIGGER ${trigger}`).run();
    }
    // The consumer's retry (about a second later, up to max_retries) appends it.
    await auditSettled(20_000);
    const entries = await db().select().from(auditLog).where(eq(auditLog.target, productId));
    expect(entries.map((entry) => entry.action)).toEqual(["product.create"]);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });

  it("a flood of refused scans never makes a concurrent admin action answer 503, and every entry is chained once", async ({
    expect,
  }) => {
    const admin = await adminOperator();
    const flood = Array.from({ length: 300 }, rejectedScan);
    const sendFlood = async () => {
      for (let at = 0; at < flood.length; at += 100) {
        await env.EVENTS.sendBatch(flood.slice(at, at + 100).map((body) => ({ body })));
      }
    };
    const [, created] = await Promise.all([
      sendFlood(),
      Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          callJson<{ id: string }>("POST", "/admin/products", {
            token: admin.token,
            body: productBody(`Flood pass ${i}`),
          }),
        ),
      ),
    ]);
    expect(created.map((answer) => answer.status)).toEqual(Array(10).fill(201));

    await auditSettled();
    const productIds = created.map((answer) => answer.body.id);
    const creates = await db().select().from(auditLog).where(inArray(auditLog.target, productIds));
    expect(creates.map((entry) => entry.target).sort()).toEqual([...productIds].sort());
    const scanIds = flood.map((scan) => `aud_${scan.scan_id}`);
    const countScans = async () => {
      let found = 0;
      // inArray binds one parameter per id: D1 allows 100 per statement.
      for (let at = 0; at < scanIds.length; at += 90) {
        const rows = await db()
          .select({ id: auditLog.id })
          .from(auditLog)
          .where(inArray(auditLog.id, scanIds.slice(at, at + 90)));
        found += rows.length;
      }
      return found;
    };
    expect(await eventually(countScans, (found) => found === flood.length, 20_000)).toBe(flood.length);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: true });
  });

  it("no module outside src/queues imports the chain's append; inside, only the consumer does", ({
    expect,
  }) => {
    // Read as text at build time (workerd has no file system): every source module of the Worker.
    const sources = import.meta.glob("../../src/**/*.ts", {
      query: "?raw",
      import: "default",
      eager: true,
    }) as Record<string, string>;
    expect(Object.keys(sources).length).toBeGreaterThan(50);
    const importers = Object.entries(sources)
      .filter(([, text]) =>
        [...text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].some(([, specifier]) =>
          /(^|\/)audit-chain(\.ts)?$/.test(specifier ?? ""),
        ),
      )
      .map(([path]) => path);
    expect(importers).toEqual(["../../src/queues/consumer.ts"]);
    // And nothing else writes the table: no insert into audit_log outside the chain's module.
    const writers = Object.entries(sources)
      .filter(([, text]) => /insert\(auditLog\)|INSERT\s+INTO\s+audit_log/i.test(text))
      .map(([path]) => path);
    expect(writers).toEqual(["../../src/queues/audit-chain.ts"]);
  });
});
