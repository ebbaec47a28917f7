import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import {
  ADMIN_CREATE_ACTOR,
  type AuditTail,
  firstAdminRecords,
  firstAdminStatements,
} from "../../scripts/first-admin";
import { hashPassword } from "../../src/auth/password";
import { auditSettled } from "../support/audit";
import { callJson } from "../support/http";

// `npm run admin:create` runs these statements through `wrangler d1 execute`; here they run against the
// app's own schema and triggers, and the result is checked through the API.

const PASSWORD = "a-long-enough-admin-password";

async function tail(): Promise<AuditTail | null> {
  return env.DB.prepare("SELECT seq, ts, hash FROM audit_log ORDER BY seq DESC LIMIT 1").first<AuditTail>();
}

async function runStatements(statements: string[]) {
  // One batch, as a single `wrangler d1 execute --file` run applies them.
  await env.DB.batch(statements.map((sql) => env.DB.prepare(sql)));
}

async function createAdmin(username: string, at = new Date()) {
  // The consumer chains the entries of earlier requests (logins) a moment later: let it finish, so that the
  // tail read here is still the tail when the statements run (the CLI retries with a fresh one instead).
  await auditSettled();
  const admin = await firstAdminRecords({
    username,
    passwordHash: await hashPassword(PASSWORD),
    now: at,
    tail: await tail(),
  });
  await runStatements(firstAdminStatements(admin));
  return admin;
}

describe("admin:create's SQL", () => {
  it("creates an admin who can sign in and administer, with an operator.create entry that keeps the chain whole", async ({
    expect,
  }) => {
    const username = `root-${crypto.randomUUID().slice(0, 8)}`;
    const admin = await createAdmin(username);

    const login = await callJson<{ operator_token: string }>("POST", "/operators/login", {
      body: { username, password: PASSWORD },
    });
    expect(login.status).toBe(200);
    const token = login.body.operator_token;
    const operators = await callJson<{
      operators: { operator_id: string; username: string; roles: string[] }[];
    }>("GET", "/admin/operators?limit=200", { token });
    expect(operators.body.operators).toContainEqual(
      expect.objectContaining({ operator_id: admin.operator.id, username, roles: ["admin"], active: true }),
    );

    const verify = await callJson<{ ok: boolean; entries: number }>("GET", "/admin/audit/verify", { token });
    expect(verify.body).toMatchObject({ ok: true });
    const entry = await env.DB.prepare("SELECT * FROM audit_log WHERE target = ?")
      .bind(admin.operator.id)
      .first<{ actor: string; action: string; details: string }>();
    expect(entry).toMatchObject({ actor: ADMIN_CREATE_ACTOR, action: "operator.create" });
    expect(JSON.parse(entry?.details ?? "{}")).toEqual({ username, roles: ["admin"], event_ids: [] });
  });

  it("an existing username (in any case) writes nothing: no entry, no second operator", async ({
    expect,
  }) => {
    const username = `taken-${crypto.randomUUID().slice(0, 8)}`;
    await createAdmin(username);
    const before = await tail();
    const again = await createAdmin(username.toUpperCase());
    expect(await tail()).toEqual(before);
    const operator = await env.DB.prepare("SELECT count(*) AS n FROM operators WHERE id = ?")
      .bind(again.operator.id)
      .first<{ n: number }>();
    expect(operator?.n).toBe(0);
  });

  it("a tail that moved since it was read is refused whole: neither the entry nor the operator", async ({
    expect,
  }) => {
    const stale = await firstAdminRecords({
      username: `late-${crypto.randomUUID().slice(0, 8)}`,
      passwordHash: await hashPassword(PASSWORD),
      now: new Date(),
      tail: await tail(),
    });
    await createAdmin(`early-${crypto.randomUUID().slice(0, 8)}`);
    await expect(runStatements(firstAdminStatements(stale))).rejects.toThrow(/audit_log_chain_conflict/);
    const operator = await env.DB.prepare("SELECT count(*) AS n FROM operators WHERE id = ?")
      .bind(stale.operator.id)
      .first<{ n: number }>();
    expect(operator?.n).toBe(0);
  });
});
