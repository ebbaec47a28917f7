import { spawnSync } from "node:child_process";
import { createHash, pbkdf2Sync, timingSafeEqual } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, it } from "vitest";

// `npm run admin:create` as an operator runs it, against a local D1 of its own (--persist-to), through
// wrangler. Runs in Node with the browser suite (it needs no browser, only Node and wrangler). What it
// wrote is checked with Node's own crypto against the formats the app documents, independently of the
// app's code (the workerd suite signs the created admin in: test/scripts/first-admin.test.ts).

/** `pbkdf2-sha256$<iterations>$<salt>$<hash>` (base64url), as src/auth/password.ts documents it. */
function passwordMatches(password: string, stored: string): boolean {
  const [id, iterations, salt, hash] = stored.split("$");
  if (id !== "pbkdf2-sha256" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64url");
  const actual = pbkdf2Sync(
    password,
    Buffer.from(salt, "base64url"),
    Number(iterations),
    expected.length,
    "sha256",
  );
  return timingSafeEqual(actual, expected);
}

/** SHA-256 (hex) over the JSON array of the entry's fields, as src/db/audit.ts documents the chain. */
const chainHash = (row: {
  seq: number;
  id: string;
  ts: string;
  actor: string;
  action: string;
  target: string;
  details: string;
  prev_hash: string;
}) =>
  createHash("sha256")
    .update(
      JSON.stringify([
        row.seq,
        row.id,
        row.ts,
        row.actor,
        row.action,
        row.target,
        row.details,
        row.prev_hash,
      ]),
    )
    .digest("hex");
const GENESIS_HASH = "0".repeat(64);

const PASSWORD = "correct-horse-battery-staple";
/** Every wrangler run starts a runtime: seconds each, more on a busy machine. */
const WRANGLER_BOUND_MS = 300_000;
let persistTo: string;

function adminCreate(args: string[], password?: string) {
  const env: Record<string, string | undefined> = { ...process.env, WRANGLER_SEND_METRICS: "false" };
  if (password === undefined) delete env.ADMIN_PASSWORD;
  else env.ADMIN_PASSWORD = password;
  return spawnSync("tsx", ["scripts/admin-create.ts", ...args, "--persist-to", persistTo], {
    encoding: "utf8",
    env,
    // No terminal: the script must not wait for a prompt.
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Each statement's rows, in order: several statements in one wrangler run (each run costs seconds). */
function query(sql: string): unknown[][] {
  const result = spawnSync(
    "wrangler",
    ["d1", "execute", "DB", "--local", "--persist-to", persistTo, "--json", "--command", sql],
    { encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
  );
  if (result.status !== 0) throw new Error(result.stderr || result.stdout);
  return (JSON.parse(result.stdout) as { results: unknown[] }[]).map((statement) => statement.results);
}

interface AuditRow {
  seq: number;
  id: string;
  ts: string;
  actor: string;
  action: string;
  target: string;
  details: string;
  prev_hash: string;
  hash: string;
}

const counts = () =>
  query("SELECT count(*) AS n FROM operators; SELECT count(*) AS n FROM audit_log").map(
    (rows) => (rows[0] as { n: number }).n,
  );

beforeAll(() => {
  persistTo = mkdtempSync(join(tmpdir(), "passes-admin-create-"));
  const migrated = spawnSync(
    "wrangler",
    ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo],
    { encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
  );
  if (migrated.status !== 0) throw new Error(migrated.stderr || migrated.stdout);
}, WRANGLER_BOUND_MS);
afterAll(() => {
  rmSync(persistTo, { recursive: true, force: true });
});

describe("npm run admin:create", { timeout: WRANGLER_BOUND_MS }, () => {
  it("creates an admin with the API's password hash and a chained operator.create entry", async ({
    expect,
  }) => {
    const created = adminCreate(["--username", "first-admin"], PASSWORD);
    expect(created.stderr).toBe("");
    expect(created.status).toBe(0);
    expect(created.stdout).toMatch(/Created admin "first-admin" \(opr_[0-9a-z]{20}\) in the local D1/);
    expect(created.stdout + created.stderr).not.toContain(PASSWORD);

    const [operators, entries] = query(
      "SELECT id, password_hash, roles, active FROM operators WHERE username = 'first-admin'; " +
        "SELECT * FROM audit_log ORDER BY seq",
    ) as [{ id: string; password_hash: string; roles: string; active: number }[], AuditRow[]];
    const operator = operators[0];
    expect(operator).toMatchObject({ roles: '["admin"]', active: 1 });
    expect(operator?.password_hash).toMatch(/^pbkdf2-sha256\$100000\$/);
    expect(passwordMatches(PASSWORD, operator?.password_hash ?? "")).toBe(true);
    expect(passwordMatches("another-password-entirely", operator?.password_hash ?? "")).toBe(false);

    const [entry] = entries;
    expect(entry).toMatchObject({
      seq: 1,
      action: "operator.create",
      target: operator?.id,
      prev_hash: GENESIS_HASH,
    });
    if (!entry) return;
    expect(chainHash(entry)).toBe(entry.hash);
    expect(JSON.parse(entry.details)).toEqual({ username: "first-admin", roles: ["admin"], event_ids: [] });
  });

  it("refuses an existing username (in any case) and changes nothing", ({ expect }) => {
    const before = counts();
    const again = adminCreate(["--username", "FIRST-ADMIN"], PASSWORD);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('An operator named "FIRST-ADMIN" already exists');
    expect(counts()).toEqual(before);
  });

  it("refuses a short password, a password given as an argument, and a missing one without a terminal", ({
    expect,
  }) => {
    const short = adminCreate(["--username", "second-admin"], "too-short");
    expect(short.status).toBe(1);
    expect(short.stderr).toContain("too short: at least 12 characters");
    const argument = adminCreate(["--username", "second-admin", "--password", PASSWORD], PASSWORD);
    expect(argument.status).toBe(1);
    expect(argument.stderr).toContain("Never pass a password as an argument");
    const missing = adminCreate(["--username", "second-admin"]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain("set ADMIN_PASSWORD");
    expect(counts()).toEqual([1, 1]);
  });
});
