// `npm run admin:create -- --username NAME [--remote] [--env staging] [--persist-to DIR]`: creates an admin
// operator (and its audit entry) in the local D1, or with --remote in the deployed one: the first admin of
// a deployment, which is never seeded. Staff after that are managed through POST /admin/operators.
//
// The password comes from the ADMIN_PASSWORD environment variable or a hidden prompt, never from an
// argument (arguments end up in shell history and process lists). It is hashed by src/auth/password.ts,
// exactly as the API hashes one; the SQL is built by scripts/first-admin.ts.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { hashPassword } from "../src/auth/password";
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from "../src/routes/operators";
import { type AuditTail, firstAdminRecords, firstAdminStatements, sqlText } from "./first-admin";

/** The username rule of POST /admin/operators. */
const USERNAME_PATTERN = /^[A-Za-z0-9._-]{3,64}$/;
/** Another writer appending to the audit log between our read of its tail and our insert: try again. */
const MAX_CHAIN_ATTEMPTS = 5;

class UsageError extends Error {}

interface Options {
  username: string;
  remote: boolean;
  /** `--env X`, passed on to wrangler. */
  env: string[];
  persistTo: string[];
}

function parseArgs(argv: string[]): Options {
  let username: string | undefined;
  let remote = false;
  const env: string[] = [];
  const persistTo: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = (argv[i] ?? "").split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i] ?? "";
    if (flag === "--username") username = value();
    else if (flag === "--remote") remote = true;
    else if (flag === "--local") remote = false;
    else if (flag === "--env" || flag === "-e") env.push("--env", value());
    else if (flag === "--persist-to") persistTo.push("--persist-to", value());
    else if (flag === "--password") {
      throw new UsageError(
        "Never pass a password as an argument: set ADMIN_PASSWORD or type it at the prompt.",
      );
    } else throw new UsageError(`Unknown argument ${flag}`);
  }
  if (!username)
    throw new UsageError("Usage: npm run admin:create -- --username NAME [--remote] [--env ENV]");
  if (!USERNAME_PATTERN.test(username)) {
    throw new UsageError("A username is 3–64 characters: letters, digits, '.', '_' or '-'.");
  }
  if (remote && persistTo.length > 0) throw new UsageError("--persist-to is for the local D1 only.");
  return { username, remote, env, persistTo };
}

/** Reads a line without echoing it. */
function promptHidden(question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
    process.stdout.write(question);
    // readline echoes what is typed through this method: silence it for the answer.
    (rl as unknown as { _writeToOutput(text: string): void })._writeToOutput = () => undefined;
    rl.question("", (answer) => {
      rl.close();
      process.stdout.write("\n");
      resolve(answer);
    });
  });
}

/** ADMIN_PASSWORD, when set; otherwise the password is asked for, which needs a terminal. */
function presetPassword(): string | undefined {
  const fromEnv = process.env.ADMIN_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  if (!process.stdin.isTTY) {
    throw new UsageError("No terminal to ask for the password: set ADMIN_PASSWORD in the environment.");
  }
  return undefined;
}

async function promptPassword(): Promise<string> {
  const password = await promptHidden("Password for the new admin: ");
  const again = await promptHidden("The same password again: ");
  if (password !== again) throw new UsageError("The two passwords differ; nothing was created.");
  return password;
}

function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new UsageError(
      `The password is too short: at least ${MIN_PASSWORD_LENGTH} characters, as the API requires.`,
    );
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new UsageError(`The password is too long: at most ${MAX_PASSWORD_LENGTH} characters.`);
  }
}

function wranglerTarget(options: Options): string[] {
  return [options.remote ? "--remote" : "--local", ...options.env, ...options.persistTo];
}

/** Runs `wrangler d1 execute DB …`; answers its stdout, or throws with what wrangler said. */
function d1Execute(options: Options, args: string[]): string {
  const result = spawnSync(
    "wrangler",
    ["d1", "execute", "DB", ...wranglerTarget(options), "--yes", ...args],
    {
      encoding: "utf8",
      env: { ...process.env, WRANGLER_SEND_METRICS: process.env.WRANGLER_SEND_METRICS ?? "false" },
    },
  );
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(result.stderr || result.stdout || "wrangler d1 execute failed");
  return result.stdout;
}

/** The operator already named `username` (the column is COLLATE NOCASE, as the login's lookup is). */
const operatorByName = (username: string) => `SELECT id FROM operators WHERE username = ${sqlText(username)}`;
const AUDIT_TAIL = "SELECT seq, ts, hash FROM audit_log ORDER BY seq DESC LIMIT 1";

/** Both reads in one wrangler run: each run costs seconds. */
function lookUp(options: Options, username: string): { taken?: string; tail: AuditTail | null } {
  const output = d1Execute(options, ["--json", "--command", `${operatorByName(username)}; ${AUDIT_TAIL}`]);
  const [operators, tail] = JSON.parse(output) as [{ results?: { id: string }[] }, { results?: AuditTail[] }];
  return { taken: operators?.results?.[0]?.id, tail: tail?.results?.[0] ?? null };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const where = `${options.remote ? "the remote" : "the local"} D1${options.env.length ? ` (${options.env[1]})` : ""}`;
  // Everything that can be refused without the database is refused before wrangler runs.
  const preset = presetPassword();
  if (preset !== undefined) checkPassword(preset);
  let { taken, tail } = lookUp(options, options.username);
  if (taken) {
    throw new UsageError(
      `An operator named "${options.username}" already exists in ${where} (${taken}). Choose another ` +
        "username, or have an admin reset its password (POST /admin/operators/{id}/password).",
    );
  }
  const password = preset ?? (await promptPassword());
  checkPassword(password);
  const passwordHash = await hashPassword(password);

  const dir = mkdtempSync(join(tmpdir(), "passes-admin-"));
  try {
    for (let attempt = 1; ; attempt++) {
      const admin = await firstAdminRecords({
        username: options.username,
        passwordHash,
        now: new Date(),
        tail,
      });
      const file = join(dir, `admin-${attempt}.sql`);
      writeFileSync(file, `${firstAdminStatements(admin).join("\n")}\n`);
      try {
        d1Execute(options, ["--file", file]);
      } catch (error) {
        if (!/audit_log_chain_conflict|UNIQUE constraint failed: audit_log/.test(String(error))) throw error;
        if (attempt >= MAX_CHAIN_ATTEMPTS) throw new Error("The audit log kept moving; try again shortly.");
        ({ taken, tail } = lookUp(options, options.username));
        if (taken)
          throw new UsageError(`"${options.username}" was created by someone else meanwhile (${taken}).`);
        continue;
      }
      ({ taken } = lookUp(options, options.username));
      if (taken === admin.operator.id) {
        console.log(`Created admin "${options.username}" (${taken}) in ${where}, with its audit entry.`);
        console.log("Sign in with POST /operators/login (or the /gate page), then manage staff from there.");
        return;
      }
      throw new UsageError(
        taken
          ? `An operator named "${options.username}" was created by someone else meanwhile (${taken}).`
          : "The admin was not created; check the database with wrangler d1 execute.",
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(
    error instanceof UsageError ? error.message : String(error instanceof Error ? error.message : error),
  );
  process.exit(1);
});
