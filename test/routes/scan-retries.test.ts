import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { signTicketQrToken, TICKET_QR_TTL_SECONDS } from "../../src/auth/qr-token";
import { loadConfig } from "../../src/env";
import { qrSigningConfig } from "../../src/http/refusals";
import { SCAN_KEY_RETENTION_MS, type TicketObject } from "../../src/objects/ticket";
import { callJson } from "../support/http";
import { gateSession, type PaidTicket, paidTicket, qrToken, type ScanBody, scan } from "../support/tickets";

// POST /tickets/scan with an Idempotency-Key: the gate's id for one scan attempt, so a retry after a lost
// answer gets that answer again instead of token_replayed (CONTRACT Part 2, "Scans: retries after a lost
// answer, and undo").

const REPLAYED = "idempotent-replayed";
/** The skew src/auth/qr-token.ts tolerates before it calls a token expired. */
const QR_CLOCK_TOLERANCE_SECONDS = 5;

type Gate = Awaited<ReturnType<typeof gateSession>>;

interface Accepted extends ScanBody {
  ticket_code?: string;
  function?: string;
  scanned_at?: string;
}

function scanWithKey(gate: Gate, qr: string, fn: string, key: string) {
  return callJson<Accepted>("POST", "/tickets/scan", {
    token: gate.token,
    idempotencyKey: key,
    body: { qr_token: qr, function: fn, session_id: gate.sessionId },
  });
}

function annul(gate: Gate, redemptionId: string) {
  return callJson<{ code?: string }>("POST", `/redemptions/${redemptionId}/annul`, {
    token: gate.token,
    body: { session_id: gate.sessionId },
  });
}

const stubFor = (code: string) => env.TICKETS.get(env.TICKETS.idFromName(code));

async function remainingUses(ticket: PaidTicket, fn: string): Promise<number | undefined> {
  const snapshot = await stubFor(ticket.code).snapshot();
  return snapshot?.entitlements.find((e) => e.function === fn)?.remaining_uses;
}

const newKey = () => crypto.randomUUID();

describe("POST /tickets/scan with Idempotency-Key: replays", () => {
  it("the same key and body replay an accepted scan: same answer, one use spent", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const qr = await qrToken(ticket);
    const key = newKey();
    const before = Date.now();
    const first = await scanWithKey(gate, qr, "bus", key);
    expect(first.status).toBe(200);
    expect(first.headers.get(REPLAYED)).toBeNull();
    expect(first.body).toMatchObject({ result: "accepted", ticket_code: ticket.code, function: "bus" });
    // The accepted answer carries when the use was spent.
    const scannedAtMs = Date.parse(first.body.scanned_at ?? "");
    expect(scannedAtMs).toBeGreaterThanOrEqual(before - 1_000);
    expect(scannedAtMs).toBeLessThanOrEqual(Date.now() + 1_000);

    for (let retry = 0; retry < 2; retry++) {
      const again = await scanWithKey(gate, qr, "bus", key);
      expect(again.status).toBe(200);
      expect(again.headers.get(REPLAYED)).toBe("true");
      expect(again.body).toEqual(first.body);
    }
    expect(await remainingUses(ticket, "bus")).toBe(4);
  });

  it("a refused scan replays refused, and stays exhausted after an annulment frees a use", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "museum", uses: 1 }]);
    const gate = await gateSession();
    const spent = await scan(gate, await qrToken(ticket), "museum");
    expect(spent.status).toBe(200);

    const qr = await qrToken(ticket);
    const key = newKey();
    const refused = await scanWithKey(gate, qr, "museum", key);
    expect(refused).toMatchObject({ status: 409, body: { code: "exhausted" } });
    expect(refused.headers.get(REPLAYED)).toBeNull();

    const again = await scanWithKey(gate, qr, "museum", key);
    expect(again.status).toBe(409);
    expect(again.headers.get(REPLAYED)).toBe("true");
    expect(again.body).toMatchObject({ code: "exhausted", entitlements: refused.body.entitlements });

    // The use comes back, but the attempt under this key was answered: it is answered the same way.
    const annulled = await annul(gate, spent.body.redemption_id ?? "");
    expect(annulled.status).toBe(200);
    expect(await remainingUses(ticket, "museum")).toBe(1);
    const afterAnnul = await scanWithKey(gate, qr, "museum", key);
    expect(afterAnnul.status).toBe(409);
    expect(afterAnnul.headers.get(REPLAYED)).toBe("true");
    expect(afterAnnul.body).toMatchObject({ code: "exhausted" });
    expect(afterAnnul.body.entitlements).toEqual([{ function: "museum", total_uses: 1, remaining_uses: 0 }]);
    expect(await remainingUses(ticket, "museum")).toBe(1);

    // A new attempt (no key, or another key) with the same token is a new scan and takes the freed use.
    const fresh = await scanWithKey(gate, qr, "museum", newKey());
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get(REPLAYED)).toBeNull();
    expect(await remainingUses(ticket, "museum")).toBe(0);
  });

  it("a retry after the token expired still gets the first answer", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    // Signed as if just before its life ended: it expires about 2 s from now.
    const signedAt = new Date(Date.now() - (TICKET_QR_TTL_SECONDS - 2) * 1000);
    const { token: qr } = await signTicketQrToken(
      qrSigningConfig(loadConfig(env)),
      { code: ticket.code, functions: ["bus"], usedUp: [] },
      signedAt,
    );
    const expiresAtMs = (Math.floor(signedAt.getTime() / 1000) + TICKET_QR_TTL_SECONDS) * 1000;
    const key = newKey();
    const first = await scanWithKey(gate, qr, "bus", key);
    expect(first.status).toBe(200);

    // Past the verifier's clock tolerance too, so that only the stored answer can accept it.
    await new Promise((resolve) =>
      setTimeout(resolve, expiresAtMs + (QR_CLOCK_TOLERANCE_SECONDS + 1) * 1000 - Date.now()),
    );
    const again = await scanWithKey(gate, qr, "bus", key);
    expect(again.status).toBe(200);
    expect(again.headers.get(REPLAYED)).toBe("true");
    expect(again.body).toEqual(first.body);

    // The token really is expired: a new attempt with it is refused as such, and nothing more is spent.
    const otherKey = await scanWithKey(gate, qr, "bus", newKey());
    expect(otherKey).toMatchObject({ status: 422, body: { code: "token_expired" } });
    expect(await remainingUses(ticket, "bus")).toBe(4);
  });
});

describe("POST /tickets/scan with Idempotency-Key: refusals", () => {
  it("the same key with another body is 422 idempotency_key_reused and spends nothing", async ({
    expect,
  }) => {
    const ticket = await paidTicket([
      { function: "bus", uses: 5 },
      { function: "ferry", uses: 2 },
    ]);
    const gate = await gateSession();
    const qr = await qrToken(ticket);
    const key = newKey();
    expect((await scanWithKey(gate, qr, "bus", key)).status).toBe(200);

    const anotherFunction = await scanWithKey(gate, qr, "ferry", key);
    expect(anotherFunction).toMatchObject({ status: 422, body: { code: "idempotency_key_reused" } });
    const anotherToken = await scanWithKey(gate, await qrToken(ticket), "bus", key);
    expect(anotherToken).toMatchObject({ status: 422, body: { code: "idempotency_key_reused" } });
    expect(await stubFor(ticket.code).snapshot()).toMatchObject({
      entitlements: [
        { function: "bus", remaining_uses: 4 },
        { function: "ferry", remaining_uses: 2 },
      ],
    });
  });

  // Keys live with the ticket they were used on (its object keeps them, so a keyed scan costs no second
  // store on the gate's path): scoped to (operator, ticket). The contract says "per operator"; a gate makes
  // one key per attempt, so a key only ever meets its own ticket. See README "Retries after a lost answer".
  it("the same key on another ticket's token is a new scan there: keys are scoped to operator and ticket", async ({
    expect,
  }) => {
    const first = await paidTicket([{ function: "bus", uses: 5 }]);
    const second = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const key = newKey();
    expect((await scanWithKey(gate, await qrToken(first), "bus", key)).status).toBe(200);

    const elsewhere = await scanWithKey(gate, await qrToken(second), "bus", key);
    expect(elsewhere.status).toBe(200);
    expect(elsewhere.headers.get(REPLAYED)).toBeNull();
    expect(await remainingUses(second, "bus")).toBe(4);
    expect(await remainingUses(first, "bus")).toBe(4);
  });

  it("20 parallel retries of one key spend exactly one use", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 10 }]);
    const gate = await gateSession();
    const qr = await qrToken(ticket);
    const key = newKey();
    const results = await Promise.all(Array.from({ length: 20 }, () => scanWithKey(gate, qr, "bus", key)));
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(results.filter((r) => r.headers.get(REPLAYED) === null)).toHaveLength(1);
    expect(new Set(results.map((r) => r.body.redemption_id)).size).toBe(1);
    expect(await remainingUses(ticket, "bus")).toBe(9);
  });

  it("a key over 64 characters is 400 idempotency_key_invalid and spends nothing", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const qr = await qrToken(ticket);
    const tooLong = await scanWithKey(gate, qr, "bus", "k".repeat(65));
    expect(tooLong).toMatchObject({ status: 400, body: { code: "idempotency_key_invalid" } });
    expect(await remainingUses(ticket, "bus")).toBeUndefined();
    // The token was not spent by the refused request; 64 characters is a good key.
    const longest = await scanWithKey(gate, qr, "bus", "k".repeat(64));
    expect(longest.status).toBe(200);
    expect(await remainingUses(ticket, "bus")).toBe(4);
  });

  it("without the header nothing changes: a second scan of a token is token_replayed", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const qr = await qrToken(ticket);
    const first = await scan(gate, qr, "bus");
    expect(first.status).toBe(200);
    expect(first.headers.get(REPLAYED)).toBeNull();
    const second = await scan(gate, qr, "bus");
    expect(second).toMatchObject({ status: 409, body: { code: "token_replayed" } });
    expect(second.headers.get(REPLAYED)).toBeNull();
    expect(await remainingUses(ticket, "bus")).toBe(4);
  });

  it("keys are scoped per operator: another operator's same key is a new scan, not a replay", async ({
    expect,
  }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const other = await gateSession();
    const qr = await qrToken(ticket);
    const key = newKey();
    const mine = await scanWithKey(gate, qr, "bus", key);
    expect(mine.status).toBe(200);

    const theirs = await scanWithKey(other, qr, "bus", key);
    expect(theirs).toMatchObject({ status: 409, body: { code: "token_replayed" } });
    expect(theirs.headers.get(REPLAYED)).toBeNull();
    // And a third operator's first attempt under the same key string is theirs alone: a new redemption.
    const third = await gateSession();
    const theirsFresh = await scanWithKey(third, await qrToken(ticket), "bus", key);
    expect(theirsFresh.status).toBe(200);
    expect(theirsFresh.headers.get(REPLAYED)).toBeNull();
    expect(theirsFresh.body.redemption_id).not.toBe(mine.body.redemption_id);
    expect(await remainingUses(ticket, "bus")).toBe(3);
  });
});

describe("POST /tickets/scan with Idempotency-Key: retention", () => {
  it("a kept key survives the object's eviction", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const qr = await qrToken(ticket);
    const key = newKey();
    const first = await scanWithKey(gate, qr, "bus", key);
    expect(first.status).toBe(200);
    await evictDurableObject(stubFor(ticket.code));
    const again = await scanWithKey(gate, qr, "bus", key);
    expect(again.status).toBe(200);
    expect(again.headers.get(REPLAYED)).toBe("true");
    expect(again.body).toEqual(first.body);
    expect(await remainingUses(ticket, "bus")).toBe(4);
  });

  it("a key is kept 24 h, through the object's alarms, and pruned after", async ({ expect }) => {
    const ticket = await paidTicket([{ function: "bus", uses: 5 }]);
    const gate = await gateSession();
    const stub = stubFor(ticket.code);
    const qr = await qrToken(ticket);
    const key = newKey();
    const before = Date.now();
    const first = await scanWithKey(gate, qr, "bus", key);
    expect(first.status).toBe(200);
    const keptUntil = () =>
      runInDurableObject(stub, (_instance: TicketObject, state) =>
        state.storage.sql
          .exec<{ keep_until_ms: number }>("SELECT keep_until_ms FROM scan_keys")
          .toArray()
          .map((row) => row.keep_until_ms),
      );
    const [keepUntilMs] = await keptUntil();
    expect(keepUntilMs).toBeGreaterThanOrEqual(before + 24 * 60 * 60 * 1000);

    // The alarm that forwards the scan also prunes; a key inside its 24 h stays.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await keptUntil()).toHaveLength(1);
    expect((await scanWithKey(gate, qr, "bus", key)).headers.get(REPLAYED)).toBe("true");

    // 24 h later (moved here by rewinding the row), the next alarm forgets it: the token's jti, still
    // remembered, now answers a retry as the replay it is.
    await runInDurableObject(stub, (_instance: TicketObject, state) => {
      state.storage.sql.exec("UPDATE scan_keys SET keep_until_ms = keep_until_ms - ?", SCAN_KEY_RETENTION_MS);
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await keptUntil()).toEqual([]);
    const afterPrune = await scanWithKey(gate, qr, "bus", key);
    expect(afterPrune).toMatchObject({ status: 409, body: { code: "token_replayed" } });
    expect(afterPrune.headers.get(REPLAYED)).toBeNull();
    expect(await remainingUses(ticket, "bus")).toBe(4);
  });
});
