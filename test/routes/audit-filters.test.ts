import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { auditPageStatement } from "../../src/db/audit";
import { getDb } from "../../src/db/client";
import { appendAudit } from "../../src/queues/audit-chain";
import { MAX_AUDIT_FILTER_LENGTH } from "../../src/routes/audit";
import type { AuditEntry } from "../../src/types/domain";
import { operatorToken } from "../support/fixtures";
import { callJson } from "../support/http";
import { adminOperator } from "../support/staff";

// GET /admin/audit with dates as well as date-times (as /reports/* take them), and the action and actor
// filters, which keep the keyset cursor working.

const db = () => getDb(env.DB);
const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

interface AuditPage {
  entries: AuditEntry[];
  next_cursor: string | null;
  code?: string;
  detail?: string;
  errors?: { path: string; message: string }[];
}

async function listAudit(query: Record<string, string>) {
  const admin = await adminOperator();
  return callJson<AuditPage>("GET", `/admin/audit?${new URLSearchParams(query)}`, { token: admin.token });
}

/** Every entry matching `query`, following next_cursor with pages of `limit`; `between` runs after page one. */
async function allPages(query: Record<string, string>, limit: number, between?: () => Promise<void>) {
  const entries: AuditEntry[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const response = await listAudit({ ...query, limit: String(limit), ...(cursor && { cursor }) });
    if (response.status !== 200)
      throw new Error(`audit: ${response.status} ${JSON.stringify(response.body)}`);
    if (response.body.entries.length > limit) throw new Error(`a page of ${limit} held more`);
    entries.push(...response.body.entries);
    cursor = response.body.next_cursor;
    if (page === 0) await between?.();
    if (!cursor) return entries;
  }
  throw new Error("too many pages");
}

/** Appends entries of fresh, test-only actions and actors, so no other test's entries match them. */
function scene() {
  const tag = crypto.randomUUID().slice(0, 8);
  const names = {
    refund: `test.refund.${tag}`,
    lookup: `test.lookup.${tag}`,
    alice: `opr_alice_${tag}`,
    bob: `opr_bob_${tag}`,
  };
  const append = (action: string, actor: string, n: number) =>
    appendAudit(db(), { actor, action, target: null, details: { n } }, new Date());
  return { names, append };
}

describe("GET /admin/audit: dates like the reports", () => {
  it("takes YYYY-MM-DD for from and to (to includes its whole day), alone or mixed with date-times", async ({
    expect,
  }) => {
    const { names, append } = scene();
    const made = [await append(names.refund, names.alice, 1), await append(names.refund, names.alice, 2)];
    const ids = made.map((entry) => entry.id);
    const entryDay = Date.parse(`${made[0]?.ts.slice(0, 10)}T00:00:00Z`);
    const today = isoDay(entryDay);
    const ofAction = (page: AuditPage) =>
      page.entries.filter((entry) => entry.action === names.refund).map((entry) => entry.id);

    const sameDay = await listAudit({ from: today, to: today, action: names.refund });
    expect(sameDay.status).toBe(200);
    expect(ofAction(sameDay.body)).toEqual(ids);
    const mixed = await listAudit({
      from: today,
      to: new Date(entryDay + DAY_MS).toISOString(),
      action: names.refund,
    });
    expect(ofAction(mixed.body)).toEqual(ids);
    const yesterday = await listAudit({
      from: isoDay(entryDay - DAY_MS),
      to: isoDay(entryDay - DAY_MS),
      action: names.refund,
    });
    expect(yesterday.body.entries).toEqual([]);
    const offset = await listAudit({
      from: `${today}T00:00:00+14:00`,
      to: `${isoDay(entryDay + DAY_MS)}T23:59:59-12:00`,
      action: names.refund,
    });
    expect(ofAction(offset.body)).toEqual(ids);
    // The listing is paged, so unlike a report the span has no 366-day bound.
    expect((await listAudit({ from: "2000-01-01", to: "2999-12-31", action: names.refund })).status).toBe(
      200,
    );
  });

  it.for<[string, Record<string, string>, string, RegExp]>([
    ["from after to (dates)", { from: "2026-11-05", to: "2026-11-01" }, "to", /before from \(2026-11-05\)/],
    [
      "from after to (date-times)",
      { from: "2026-11-05T10:00:00Z", to: "2026-11-05T09:00:00Z" },
      "to",
      /must be later than from/,
    ],
    ["an equal date-time range", { from: "2026-11-05T10:00:00Z", to: "2026-11-05T10:00:00Z" }, "to", /later/],
    [
      "a word for from",
      { from: "yesterday", to: "2026-11-01" },
      "from",
      /"yesterday" is not a date \(YYYY-MM-DD\)/,
    ],
    ["a day not on the calendar", { from: "2026-02-30", to: "2026-03-01" }, "from", /is not a date/],
    ["a month 13", { from: "2026-01-01", to: "2026-13-01" }, "to", /"2026-13-01" is not a date/],
    ["a time without a zone", { from: "2026-11-01T10:00:00", to: "2026-11-02" }, "from", /is not a date/],
    ["a date with slashes", { from: "2026/11/01", to: "2026-11-02" }, "from", /is not a date/],
  ])("400 validation_failed that says what is wrong: %s", async ([, query, path, message], { expect }) => {
    const response = await listAudit(query);
    expect(response.status).toBe(400);
    expect(response.headers.get("content-type")).toContain("application/problem+json");
    expect(response.body.code).toBe("validation_failed");
    expect(response.body.errors).toHaveLength(1);
    expect(response.body.errors?.[0]?.path).toBe(path);
    expect(response.body.errors?.[0]?.message).toMatch(message);
    expect(response.body.detail).toMatch(message);
  });

  it.for<[string, Record<string, string>]>([
    ["no range", {}],
    ["no to", { from: "2026-11-01" }],
    ["an empty action", { from: "2026-11-01", to: "2026-11-02", action: "" }],
    [
      "an over-long actor",
      { from: "2026-11-01", to: "2026-11-02", actor: "x".repeat(MAX_AUDIT_FILTER_LENGTH + 1) },
    ],
    ["an over-long from", { from: `2026-11-01T00:00:00.000000000+00:00${"0".repeat(10)}`, to: "2026-11-02" }],
  ])("400 validation_failed for %s", async ([, query], { expect }) => {
    const response = await listAudit(query);
    expect(response.status).toBe(400);
    expect(response.body.code).toBe("validation_failed");
    expect(response.body.errors?.[0]?.message).toBeTruthy();
  });

  it("says what is wrong with a report's range too (the reports share the parser)", async ({ expect }) => {
    const analyst = await operatorToken(["analyst"]);
    const reversed = await callJson<AuditPage>("GET", "/reports/redemptions?from=2026-01-05&to=2026-01-02", {
      token: analyst.token,
    });
    expect(reversed.status).toBe(400);
    expect(reversed.body.errors?.[0]).toEqual({
      path: "to",
      message:
        "to (2026-01-02) is before from (2026-01-05): the range must end on or after the day it starts",
    });
    const tooLong = await callJson<AuditPage>("GET", "/reports/redemptions?from=2024-01-01&to=2026-01-02", {
      token: analyst.token,
    });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.errors?.[0]?.message).toMatch(/spans 733 days: at most 366/);
  });
});

describe("GET /admin/audit: action and actor filters", () => {
  it("narrows to exact matches of action, actor, or both, in chain order", async ({ expect }) => {
    const { names, append } = scene();
    const from = new Date().toISOString();
    const made = [
      await append(names.refund, names.alice, 1),
      await append(names.lookup, names.alice, 2),
      await append(names.refund, names.bob, 3),
      await append(names.lookup, names.bob, 4),
      await append(names.refund, names.alice, 5),
    ];
    const to = "2999-01-01T00:00:00Z";
    const ids = (entries: AuditEntry[]) => entries.map((entry) => entry.details.n);

    expect(ids(await allPages({ from, to, action: names.refund }, 100))).toEqual([1, 3, 5]);
    expect(ids(await allPages({ from, to, actor: names.bob }, 100))).toEqual([3, 4]);
    expect(ids(await allPages({ from, to, action: names.refund, actor: names.alice }, 100))).toEqual([1, 5]);
    // Exact, not a prefix or a pattern.
    expect(await allPages({ from, to, action: names.refund.slice(0, -1) }, 100)).toEqual([]);
    expect(await allPages({ from, to, action: `${names.refund.slice(0, -1)}%` }, 100)).toEqual([]);
    expect(await allPages({ from, to, actor: names.alice.toUpperCase() }, 100)).toEqual([]);
    // Entries come back whole, with their chain fields.
    const [first] = await allPages({ from, to, action: names.refund, actor: names.alice }, 1);
    expect(first).toEqual(made[0]);
  });

  it("keeps the cursor working with filters, while other writers append between pages", async ({
    expect,
  }) => {
    const { names, append } = scene();
    const from = new Date().toISOString();
    for (let n = 1; n <= 5; n++) {
      await append(names.refund, n % 2 ? names.alice : names.bob, n);
      await append(names.lookup, names.alice, 100 + n);
    }
    const later: number[] = [];
    const entries = await allPages(
      { from, to: "2999-01-01T00:00:00Z", action: names.refund },
      2,
      async () => {
        // After the first page: more of the filtered action and plenty of others, concurrently.
        await Promise.all([
          ...[6, 7, 8].map((n) => append(names.refund, names.bob, n).then(() => later.push(n))),
          ...Array.from({ length: 10 }, (_, i) => append(names.lookup, names.bob, 200 + i)),
        ]);
      },
    );
    const seen = entries.map((entry) => entry.details.n as number);
    expect(seen.slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(seen.slice(5).sort()).toEqual([6, 7, 8]);
    expect(new Set(entries.map((entry) => entry.id)).size).toBe(8);
    expect(entries.every((entry) => entry.action === names.refund)).toBe(true);
    const seqs = entries.map((entry) => entry.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(later.sort()).toEqual([6, 7, 8]);

    // A page of an actor's entries ends where the next begins: no gap, no repeat, at any page size.
    for (const limit of [1, 3, 4]) {
      const pages = await allPages({ from, to: "2999-01-01T00:00:00Z", actor: names.alice }, limit);
      expect(pages.map((entry) => entry.details.n)).toEqual([1, 101, 102, 3, 103, 104, 5, 105]);
    }
  });

  it("reads each filter through its own index, as one range in (ts, seq) order", async ({ expect }) => {
    const plans: Record<string, string> = {};
    for (const [name, filter] of Object.entries({
      action: { action: "pos.refund" },
      actor: { actor: "opr_x" },
      none: {},
    })) {
      const statement = auditPageStatement(db(), {
        from: "2026-01-01T00:00:00.000Z",
        to: "2026-01-02T00:00:00.000Z",
        after: { ts: "2026-01-01T10:00:00.000Z", seq: 5 },
        limit: 10,
        ...filter,
      }).toSQL();
      const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${statement.sql}`)
        .bind(...statement.params)
        .all<{ detail: string }>();
      plans[name] = plan.results.map((row) => row.detail).join(" | ");
    }
    expect(plans.action).toMatch(/^SEARCH audit_log USING INDEX audit_log_by_action \(action=\? AND /);
    expect(plans.actor).toMatch(/^SEARCH audit_log USING INDEX audit_log_by_actor \(actor=\? AND /);
    expect(plans.none).toMatch(/^SEARCH audit_log USING INDEX audit_log_by_ts/);
    // No sort step: the index order is the page order.
    for (const plan of Object.values(plans)) expect(plan).not.toMatch(/TEMP B-TREE/);
  });

  it("is for admins only", async ({ expect }) => {
    for (const roles of [["analyst"], ["pos"], ["supervisor"]] as const) {
      const operator = await operatorToken([...roles]);
      const response = await callJson("GET", "/admin/audit?from=2026-01-01&to=2026-01-02&action=pos.refund", {
        token: operator.token,
      });
      expect(response.status).toBe(403);
    }
    expect((await callJson("GET", "/admin/audit?from=2026-01-01&to=2026-01-02")).status).toBe(401);
  });
});
