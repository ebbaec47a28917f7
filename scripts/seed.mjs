// Seeds the LOCAL D1 with the contract's development data. Idempotent: fixed ids and
// INSERT … ON CONFLICT DO NOTHING, so running it twice changes nothing.
import { spawnSync } from "node:child_process";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const DEMO_PASSWORD = "demo-password-123";
// Same format and work factor as src/auth/password.ts.
const ITERATIONS = 100_000;

function hashPassword(password) {
  const salt = randomBytes(16);
  const hash = pbkdf2Sync(password, salt, ITERATIONS, 32, "sha256");
  return `pbkdf2-sha256$${ITERATIONS}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

const quote = (value) => (value === null ? "NULL" : `'${String(value).replaceAll("'", "''")}'`);

export function seedSql(now = new Date().toISOString()) {
  const operators = [
    ["opr_seed_admin", "admin-demo", ["admin"], []],
    ["opr_seed_gate", "gate-demo", ["gate"], []],
    ["opr_seed_pos", "pos-demo", ["pos"], ["evt-demo"]],
    ["opr_seed_analyst", "analyst-demo", ["analyst"], []],
  ];
  const statements = operators.map(
    ([id, username, roles, events]) =>
      `INSERT INTO operators (id, username, password_hash, roles, event_ids, active, created_at) VALUES (${quote(id)}, ${quote(username)}, ${quote(hashPassword(DEMO_PASSWORD))}, ${quote(JSON.stringify(roles))}, ${quote(JSON.stringify(events))}, 1, ${quote(now)}) ON CONFLICT DO NOTHING;`,
  );
  statements.push(
    `INSERT INTO products (id, name, description, price_cents, currency, functions, sellable, reserved, sold, active, created_at, updated_at) VALUES ('prd_seed_harbour_pass', 'Harbour Pass', 'Bus ×10, ferry ×2 and one museum entry.', 3900, 'EUR', ${quote(
      JSON.stringify([
        { function: "bus", uses: 10 },
        { function: "ferry", uses: 2 },
        { function: "museum", uses: 1 },
      ]),
    )}, 1000, 0, 0, 1, ${quote(now)}, ${quote(now)}) ON CONFLICT DO NOTHING;`,
  );
  statements.push(
    `INSERT INTO devices (id, kind, location_id, event_id, functions, active, created_at, updated_at) VALUES ('dev-gate-1', 'gate', 'loc-pier-1', NULL, NULL, 1, ${quote(now)}, ${quote(now)}) ON CONFLICT DO NOTHING;`,
    `INSERT INTO devices (id, kind, location_id, event_id, functions, active, created_at, updated_at) VALUES ('dev-pos-1', 'pos', NULL, 'evt-demo', NULL, 1, ${quote(now)}, ${quote(now)}) ON CONFLICT DO NOTHING;`,
  );
  return `${statements.join("\n")}\n`;
}

function execute(sql, persistTo) {
  const dir = mkdtempSync(join(tmpdir(), "passes-seed-"));
  const file = join(dir, "seed.sql");
  writeFileSync(file, sql);
  const persist = persistTo ? ["--persist-to", persistTo] : [];
  return spawnSync("wrangler", ["d1", "execute", "DB", "--local", ...persist, "--file", file], {
    encoding: "utf8",
  });
}

/** `persistTo`: a local state directory as wrangler's `--persist-to` takes it (default: .wrangler/state). */
export async function seedLocalDatabase({ persistTo } = {}) {
  const now = new Date().toISOString();
  const result = execute(seedSql(now), persistTo);
  if (result.status !== 0) {
    process.stderr.write(result.stderr || result.stdout);
    throw new Error("seeding the local D1 failed");
  }
  console.log(
    "Seeded local D1: operators admin-demo, gate-demo, pos-demo, analyst-demo; Harbour Pass; devices.",
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await seedLocalDatabase();
