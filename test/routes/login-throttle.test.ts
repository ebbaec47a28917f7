import { and, eq, inArray } from "drizzle-orm";
import { describe, it } from "vitest";
import {
  forgetQuietLoginStreaks,
  LOGIN_BACKOFF_BASE_SECONDS,
  LOGIN_BACKOFF_MAX_SECONDS,
  LOGIN_FREE_ATTEMPTS,
  LOGIN_STREAK_RESET_SECONDS,
  reserveLoginAttempt,
} from "../../src/db/login-throttle";
import { auditLog, loginAttempts } from "../../src/db/schema";
import { auditSettled } from "../support/audit";
import { db, operatorToken, TEST_PASSWORD } from "../support/fixtures";
import { callJson } from "../support/http";
import { adminOperator } from "../support/staff";
import { deduct, fundedWallet, posTill, walletQr } from "../support/wallet";

interface LoginAnswer {
  code?: string;
  retry_after?: number;
  operator_token?: string;
}

/** One login from `address`, as Cloudflare would report it in CF-Connecting-IP. */
function login(username: string, password: string, address: string) {
  return callJson<LoginAnswer>("POST", "/operators/login", {
    body: { username, password },
    headers: { "cf-connecting-ip": address },
  });
}

/** A fresh address (IPv6 documentation range) per test: storage is shared by the tests of a file. */
const uniqueAddress = () => {
  const groups = [...crypto.getRandomValues(new Uint16Array(4))].map((group) => group.toString(16));
  return `2001:db8:${groups.join(":")}::1`;
};

const count = (answers: { status: number }[], status: number) =>
  answers.filter((answer) => answer.status === status).length;

/** The entries by `actor`, once the consumer has chained every entry requested so far. */
async function auditEntriesBy(actor: string) {
  await auditSettled();
  return db().select().from(auditLog).where(eq(auditLog.actor, actor));
}

describe("POST /operators/login: throttling per (username, address)", () => {
  it("of 30 wrong logins sent at once, only the free attempts reach the password check", async ({
    expect,
  }) => {
    const { username } = await operatorToken(["gate"]);
    const address = uniqueAddress();
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => login(username, "wrong-password!", address)),
    );
    expect(count(answers, 401)).toBe(LOGIN_FREE_ATTEMPTS);
    expect(count(answers, 429)).toBe(30 - LOGIN_FREE_ATTEMPTS);
    for (const answer of answers.filter((a) => a.status === 401)) {
      expect(answer.body.code).toBe("invalid_credentials");
    }
    for (const answer of answers.filter((a) => a.status === 429)) {
      expect(answer.body.code).toBe("too_many_attempts");
      const retryAfter = Number(answer.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(LOGIN_BACKOFF_BASE_SECONDS);
      expect(answer.body.retry_after).toBe(retryAfter);
    }
    // Refusals are counted in the throttle's row.
    const [row] = await db()
      .select()
      .from(loginAttempts)
      .where(and(eq(loginAttempts.username, username), eq(loginAttempts.clientAddress, address)));
    expect(row).toMatchObject({ attempts: LOGIN_FREE_ATTEMPTS, refused: 30 - LOGIN_FREE_ATTEMPTS });
  });

  it("once throttled, even the right password waits at that address", async ({ expect }) => {
    const { username } = await operatorToken(["gate"]);
    const address = uniqueAddress();
    for (let i = 0; i < LOGIN_FREE_ATTEMPTS; i++) {
      expect((await login(username, "wrong-password!", address)).body.code).toBe("invalid_credentials");
    }
    const blocked = await login(username, TEST_PASSWORD, address);
    expect(blocked.status).toBe(429);
    expect(blocked.body.code).toBe("too_many_attempts");
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  it("ten wrong passwords from address A never lock the username out at address B", async ({ expect }) => {
    const { username } = await operatorToken(["gate"]);
    const a = uniqueAddress();
    const b = uniqueAddress();
    const fromA = [];
    for (let i = 0; i < 10; i++) fromA.push(await login(username, "wrong-password!", a));
    expect(count(fromA, 401)).toBe(LOGIN_FREE_ATTEMPTS);
    expect(count(fromA, 429)).toBe(10 - LOGIN_FREE_ATTEMPTS);
    const fromB = await login(username, TEST_PASSWORD, b);
    expect(fromB.status).toBe(200);
    expect(fromB.body.operator_token).toBeTruthy();
    // B's success resets B's counter only: A is still waiting.
    expect((await login(username, TEST_PASSWORD, a)).body.code).toBe("too_many_attempts");
  });

  it("a username differing only in case shares the counter", async ({ expect }) => {
    const { username } = await operatorToken(["gate"]);
    const address = uniqueAddress();
    for (let i = 0; i < LOGIN_FREE_ATTEMPTS; i++) await login(username, "wrong-password!", address);
    expect((await login(username.toUpperCase(), TEST_PASSWORD, address)).body.code).toBe("too_many_attempts");
  });

  it("a success resets the counter for that (username, address)", async ({ expect }) => {
    const { username } = await operatorToken(["gate"]);
    const address = uniqueAddress();
    for (let i = 0; i < LOGIN_FREE_ATTEMPTS - 1; i++) {
      expect((await login(username, "wrong-password!", address)).status).toBe(401);
    }
    expect((await login(username, TEST_PASSWORD, address)).status).toBe(200);
    const again = await Promise.all(
      Array.from({ length: LOGIN_FREE_ATTEMPTS }, () => login(username, "wrong-password!", address)),
    );
    expect(count(again, 401)).toBe(LOGIN_FREE_ATTEMPTS);
  });

  it("an unknown username is throttled the same way as a wrong password", async ({ expect }) => {
    const address = uniqueAddress();
    const ghost = `ghost-${crypto.randomUUID().slice(0, 8)}`;
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => login(ghost, "wrong-password!", address)),
    );
    expect(count(answers, 401)).toBe(LOGIN_FREE_ATTEMPTS);
    expect(count(answers, 429)).toBe(12 - LOGIN_FREE_ATTEMPTS);
    expect(answers.find((a) => a.status === 401)?.body.code).toBe("invalid_credentials");
  });
});

describe("POST /operators/login: a flood stays out of the audit chain", () => {
  it("200 failed logins at once add a handful of audit entries and no 5xx to concurrent deductions", async ({
    expect,
  }) => {
    const { username } = await operatorToken(["gate"]);
    const address = uniqueAddress();
    const till = await posTill();
    const deductions = 10;
    const { token: buyer } = await fundedWallet(deductions * 100);
    const qrs = await Promise.all(Array.from({ length: deductions }, () => walletQr(buyer)));

    const [logins, paid] = await Promise.all([
      Promise.all(Array.from({ length: 200 }, () => login(username, "wrong-password!", address))),
      Promise.all(qrs.map((qr) => deduct(till, qr, 100))),
    ]);

    expect(logins.filter((answer) => answer.status >= 500)).toEqual([]);
    expect(count(logins, 401)).toBe(LOGIN_FREE_ATTEMPTS);
    expect(count(logins, 429)).toBe(200 - LOGIN_FREE_ATTEMPTS);
    expect(paid.map((answer) => answer.status)).toEqual(Array(deductions).fill(201));

    // One entry per admitted failure, and one when the pair was first throttled.
    const entries = await auditEntriesBy(username);
    expect(entries.filter((entry) => entry.action === "operator.login_failed")).toHaveLength(
      LOGIN_FREE_ATTEMPTS,
    );
    const throttled = entries.filter((entry) => entry.action === "operator.login_throttled");
    expect(throttled).toHaveLength(1);
    expect(JSON.parse(throttled[0]?.details ?? "{}")).toMatchObject({ client_address: address });
    expect(entries.length).toBeLessThanOrEqual(LOGIN_FREE_ATTEMPTS + 1);
  });

  it("200 failed logins at once leave concurrent audited admin changes unharmed", async ({ expect }) => {
    const admin = await adminOperator();
    const { username } = await operatorToken(["gate"]);
    const address = uniqueAddress();
    const changes = 10;
    const product = (i: number) => ({
      name: `Flood pass ${i}`,
      price_cents: 100,
      sellable: 1,
      functions: [{ function: "bus", uses: 1 }],
    });

    // Neither path appends to the chain: each commits a request for its entry, and the consumer chains them.
    const [logins, created] = await Promise.all([
      Promise.all(Array.from({ length: 200 }, () => login(username, "wrong-password!", address))),
      Promise.all(
        Array.from({ length: changes }, (_, i) =>
          callJson("POST", "/admin/products", { token: admin.token, body: product(i) }),
        ),
      ),
    ]);

    expect(logins.filter((answer) => answer.status >= 500)).toEqual([]);
    expect(count(logins, 429)).toBe(200 - LOGIN_FREE_ATTEMPTS);
    expect(created.map((answer) => answer.status)).toEqual(Array(changes).fill(201));
    expect((await auditEntriesBy(username)).length).toBeLessThanOrEqual(LOGIN_FREE_ATTEMPTS + 1);
    const productIds = created.map((answer) => (answer.body as { id: string }).id);
    const creates = await db()
      .select({ target: auditLog.target })
      .from(auditLog)
      .where(and(eq(auditLog.action, "product.create"), inArray(auditLog.target, productIds)));
    expect(creates.map((entry) => entry.target).sort()).toEqual([...productIds].sort());
  });
});

describe("reserveLoginAttempt: back-off", () => {
  const seconds = (n: number) => n * 1000;

  it("after the free attempts the wait starts at the base, doubles, and stops at the cap", async ({
    expect,
  }) => {
    const username = `backoff-${crypto.randomUUID().slice(0, 8)}`;
    const address = uniqueAddress();
    let clock = Date.parse("2030-01-01T00:00:00Z");
    const attempt = () => reserveLoginAttempt(db(), username, address, new Date(clock));

    for (let i = 0; i < LOGIN_FREE_ATTEMPTS; i++) expect(await attempt()).toEqual({ admitted: true });

    const waits: number[] = [];
    for (let round = 0; round < 8; round++) {
      const refused = await attempt();
      if (refused.admitted) throw new Error("expected a refusal while waiting");
      waits.push(refused.retryAfterSeconds);
      // Still waiting one second before the end; admitted exactly when the wait is over.
      clock += seconds(refused.retryAfterSeconds - 1);
      expect((await attempt()).admitted).toBe(false);
      clock += seconds(1);
      expect(await attempt()).toEqual({ admitted: true });
    }
    const base = LOGIN_BACKOFF_BASE_SECONDS;
    const expected = [1, 2, 4, 8, 16, 32, 64, 128].map((factor) =>
      Math.min(base * factor, LOGIN_BACKOFF_MAX_SECONDS),
    );
    expect(waits).toEqual(expected);
    expect(waits.at(-1)).toBe(LOGIN_BACKOFF_MAX_SECONDS);
  });

  it("counts every refusal, and only the first of a streak says it is the first", async ({ expect }) => {
    const username = `refusals-${crypto.randomUUID().slice(0, 8)}`;
    const address = uniqueAddress();
    const now = new Date("2030-02-01T00:00:00Z");
    for (let i = 0; i < LOGIN_FREE_ATTEMPTS; i++) await reserveLoginAttempt(db(), username, address, now);
    const refusals = [];
    for (let i = 0; i < 3; i++) refusals.push(await reserveLoginAttempt(db(), username, address, now));
    expect(refusals.map((r) => (r.admitted ? "admitted" : r.refused))).toEqual([1, 2, 3]);
  });

  it("a streak quiet for the reset period starts afresh, and the sweep forgets it", async ({ expect }) => {
    const username = `quiet-${crypto.randomUUID().slice(0, 8)}`;
    const address = uniqueAddress();
    const start = Date.parse("2030-03-01T00:00:00Z");
    for (let i = 0; i <= LOGIN_FREE_ATTEMPTS; i++) {
      await reserveLoginAttempt(db(), username, address, new Date(start));
    }
    expect((await reserveLoginAttempt(db(), username, address, new Date(start))).admitted).toBe(false);

    const later = new Date(start + seconds(LOGIN_STREAK_RESET_SECONDS));
    for (let i = 0; i < LOGIN_FREE_ATTEMPTS; i++) {
      expect(await reserveLoginAttempt(db(), username, address, later)).toEqual({ admitted: true });
    }
    const [row] = await db()
      .select()
      .from(loginAttempts)
      .where(and(eq(loginAttempts.username, username), eq(loginAttempts.clientAddress, address)));
    expect(row).toMatchObject({ attempts: LOGIN_FREE_ATTEMPTS, refused: 0 });

    const muchLater = new Date(later.getTime() + seconds(LOGIN_STREAK_RESET_SECONDS));
    expect(await forgetQuietLoginStreaks(db(), muchLater)).toBeGreaterThanOrEqual(1);
    const left = await db().select().from(loginAttempts).where(eq(loginAttempts.username, username));
    expect(left).toEqual([]);
  });
});
