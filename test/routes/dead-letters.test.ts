import { env, exports } from "cloudflare:workers";
import { describe, it } from "vitest";
import { buildApp } from "../../src/app";
import { deadLetterId, recordEventFailure } from "../../src/db/dead-letters";
import type { Env } from "../../src/env";
import type { EventMessage } from "../../src/queues/messages";
import { auditSettled } from "../support/audit";
import { db, operatorToken } from "../support/fixtures";
import { callJson } from "../support/http";

const DEAD_LETTER_QUEUE = "passes-events-dlq";

interface DeadLetterBody {
  id: string;
  queue: string;
  body: unknown;
  error: string;
  attempts: number | null;
  sent_at: string | null;
  received_at: string;
  replayed_at: string | null;
}
interface ListBody {
  dead_letters: DeadLetterBody[];
  next_cursor: string | null;
}

/** The Worker's queue() handler through its loopback binding (test-only flag service_binding_extra_handlers). */
const worker = exports.default as unknown as {
  queue(
    queue: string,
    messages: { id: string; timestamp: Date; attempts: number; body: unknown }[],
  ): Promise<{ outcome: string; ackAll: boolean }>;
};

let admin: Promise<{ token: string; operatorId: string }> | undefined;
/** One admin per file (storage is per file), created on first use. */
async function adminToken(): Promise<string> {
  admin ??= operatorToken(["admin"]);
  return (await admin).token;
}

function list(token: string, query = "") {
  return callJson<ListBody>("GET", `/admin/dead-letters${query}`, { token });
}

/** Every dead letter, following next_cursor to the end. */
async function allDeadLetters(token: string, limit = 100): Promise<DeadLetterBody[]> {
  const all: DeadLetterBody[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const page = await list(token, query);
    if (page.status !== 200) throw new Error(`listing failed: ${page.status}`);
    all.push(...page.body.dead_letters);
    cursor = page.body.next_cursor;
  } while (cursor);
  return all;
}

async function eventually<T>(read: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function auditCount(id: string): Promise<number> {
  const row = await env.DB.prepare("SELECT count(*) AS n FROM audit_log WHERE id = ?")
    .bind(id)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

function auditRequest(auditId: string): EventMessage {
  return {
    type: "audit.requested",
    audit: {
      id: auditId,
      actor: "system:test",
      action: "test.dead_letter",
      target: null,
      details: { why: "a message that fails every delivery" },
      ts: new Date().toISOString(),
    },
  };
}

const messageId = () => `m-${crypto.randomUUID()}`;

describe("dead letters through the real queues", () => {
  it("an event failing every delivery is stored with its error and attempts; a replay processes it once", async ({
    expect,
  }) => {
    const token = await adminToken();
    const auditId = `aud_dlq_${crypto.randomUUID().replaceAll("-", "")}`;
    const trigger = `test_fail_${auditId}`;
    // The consumer appends this entry; D1 refuses it on every delivery until the trigger is dropped,
    // as it would refuse a write during an outage or against a bug.
    await env.DB.prepare(
      `CREATE TRIGGER ${trigger} BEFORE INSERT ON audit_log WHEN NEW.id = '${auditId}' ` +
        `BEGIN SELECT RAISE(ABORT, 'crafted failure for the dead-letter test'); END`,
    ).run();
    const message = auditRequest(auditId);
    await env.EVENTS.send(message);

    // max_retries = 5: six deliveries about a second apart, then the dead-letter queue's batch (≤ 5 s).
    const letter = await eventually(
      async () =>
        (await allDeadLetters(token)).find(
          (d) => (d.body as { audit?: { id?: string } }).audit?.id === auditId,
        ),
      60_000,
    );
    expect(letter).toMatchObject({ queue: "passes-events", attempts: 6, replayed_at: null, body: message });
    expect(letter?.error).toContain("crafted failure for the dead-letter test");
    expect(Date.parse(letter?.received_at ?? "")).not.toBeNaN();
    expect(await auditCount(auditId)).toBe(0);
    // The failure record went with the dead letter.
    const failures = await env.DB.prepare("SELECT count(*) AS n FROM event_failures WHERE message_id = ?")
      .bind(letter?.id.replace(/^dlt_/, ""))
      .first<{ n: number }>();
    expect(failures?.n).toBe(0);
    if (!letter) return;

    // The cause is fixed; the admin replays.
    await env.DB.prepare(`DROP TRIGGER ${trigger}`).run();
    const replay = await callJson<{ id: string; replayed_at: string }>(
      "POST",
      `/admin/dead-letters/${letter.id}/replay`,
      { token },
    );
    expect(replay.status).toBe(200);
    expect(replay.body.id).toBe(letter.id);
    expect(await eventually(async () => ((await auditCount(auditId)) === 1 ? true : undefined), 20_000)).toBe(
      true,
    );

    // A second replay sends nothing and answers the first replay's time.
    const sends: unknown[] = [];
    const spyEnv: Env = {
      ...(env as Env),
      EVENTS: { send: async (body: unknown) => void sends.push(body) } as unknown as Env["EVENTS"],
    };
    const ctx = { waitUntil: () => undefined, passThroughOnException: () => undefined, props: {} };
    const again = await buildApp().fetch(
      new Request(`https://passes.test/admin/dead-letters/${letter.id}/replay`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
      }),
      spyEnv,
      ctx as unknown as ExecutionContext,
    );
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ id: letter.id, replayed_at: replay.body.replayed_at });
    expect(sends).toEqual([]);

    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(await auditCount(auditId)).toBe(1);
    // The replay's own entry is chained by the consumer from the request the replay committed.
    await auditSettled();
    expect(await auditCount(`aud_replay_${letter.id}`)).toBe(1);
    const listed = (await allDeadLetters(token)).find((d) => d.id === letter.id);
    expect(listed?.replayed_at).toBe(replay.body.replayed_at);
    // The failed appends left the chain whole.
    const verify = await callJson<{ ok: boolean }>("GET", "/admin/audit/verify", { token });
    expect(verify.body.ok).toBe(true);
  }, 120_000);
});

describe("the dead-letter consumer", () => {
  it("stores a message once however often it is delivered; without a recorded failure the error is unknown", async ({
    expect,
  }) => {
    const token = await adminToken();
    const id = messageId();
    const body = auditRequest(`aud_never_${crypto.randomUUID()}`);
    const delivery = [{ id, timestamp: new Date("2026-11-21T10:00:00Z"), attempts: 1, body }];
    expect(await worker.queue(DEAD_LETTER_QUEUE, delivery)).toMatchObject({ outcome: "ok", ackAll: true });
    expect(await worker.queue(DEAD_LETTER_QUEUE, delivery)).toMatchObject({ outcome: "ok", ackAll: true });
    const stored = (await allDeadLetters(token)).filter((d) => d.id === deadLetterId(id));
    expect(stored).toEqual([
      {
        id: deadLetterId(id),
        queue: "passes-events",
        body,
        error: "unknown",
        attempts: null,
        sent_at: "2026-11-21T10:00:00.000Z",
        received_at: expect.any(String),
        replayed_at: null,
      },
    ]);
  });

  it("finds the recorded failure by the body when the message arrives under another id", async ({
    expect,
  }) => {
    const token = await adminToken();
    const body = auditRequest(`aud_other_${crypto.randomUUID()}`);
    await recordEventFailure(db(), {
      messageId: messageId(),
      queue: "passes-events",
      body,
      attempts: 6,
      error: new Error("D1_ERROR: storage full"),
      now: new Date(),
    });
    const id = messageId();
    await worker.queue(DEAD_LETTER_QUEUE, [{ id, timestamp: new Date(), attempts: 1, body }]);
    const stored = (await allDeadLetters(token)).find((d) => d.id === deadLetterId(id));
    expect(stored).toMatchObject({
      error: "Error: D1_ERROR: storage full",
      attempts: 6,
      queue: "passes-events",
    });
  });
});

describe("GET /admin/dead-letters", () => {
  it("pages newest first with an opaque cursor, every letter once", async ({ expect }) => {
    const token = await adminToken();
    const ids = [messageId(), messageId(), messageId()];
    for (const id of ids) {
      await worker.queue(DEAD_LETTER_QUEUE, [
        { id, timestamp: new Date(), attempts: 1, body: auditRequest(`aud_${id}`) },
      ]);
    }
    const paged = await allDeadLetters(token, 1);
    const all = await allDeadLetters(token);
    expect(paged.map((d) => d.id)).toEqual(all.map((d) => d.id));
    expect(new Set(paged.map((d) => d.id)).size).toBe(paged.length);
    const ours = paged.map((d) => d.id).filter((id) => ids.map(deadLetterId).includes(id));
    expect(ours).toEqual(ids.map(deadLetterId).reverse());
  });

  it("is for admins only; a cursor it did not issue is a 400", async ({ expect }) => {
    const gate = await operatorToken(["gate"]);
    expect((await callJson("GET", "/admin/dead-letters")).status).toBe(401);
    expect((await list(gate.token)).status).toBe(403);
    const bad = await list(await adminToken(), "?cursor=not-a-cursor");
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: "validation_failed" });
    expect((await list(await adminToken(), "?limit=101")).status).toBe(400);
  });
});

describe("POST /admin/dead-letters/{id}/replay", () => {
  it("an unknown id is a 404; a non-admin is refused", async ({ expect }) => {
    const missing = await callJson("POST", "/admin/dead-letters/dlt_missing/replay", {
      token: await adminToken(),
    });
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ code: "not_found" });
    const pos = await operatorToken(["pos"], ["evt-x"]);
    expect(
      (await callJson("POST", "/admin/dead-letters/dlt_missing/replay", { token: pos.token })).status,
    ).toBe(403);
  });
});
