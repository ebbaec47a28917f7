// `npm run deploy [-- <wrangler deploy arguments>]`: builds the pages, applies the D1 migrations to the
// remote database, then deploys. Arguments go on to `wrangler deploy` (`--env staging`, `--dry-run`,
// `--outdir dist`, …); `--env` also picks the environment whose database is migrated, and without it the
// top-level (production) environment is named explicitly rather than by default.
//
// With `--dry-run` nothing remote is touched and no account is needed: no migration, and wrangler only
// bundles the Worker and reads the assets it would upload (offline), which is what CI checks.
//
// Migrations go first: they only ever add (new tables, columns, indexes), so the running version keeps
// working on the migrated database, and the new version never starts on a database without its tables.
import { spawnSync } from "node:child_process";
import { buildWeb } from "./build-web.mjs";

const args = process.argv.slice(2);
const dryRun = args.includes("--dry-run");

/** `--env X`, `--env=X` or `-e X` as given, for the migration step too; [] when absent. */
function environmentArgs(list) {
  for (let i = 0; i < list.length; i++) {
    const arg = list[i];
    if (arg === "--env" || arg === "-e") return [arg, list[i + 1] ?? ""];
    if (arg.startsWith("--env=") || arg.startsWith("-e=")) return [arg];
  }
  return [];
}

function run(command, commandArgs) {
  console.log(`$ ${command} ${commandArgs.join(" ")}`);
  const result = spawnSync(command, commandArgs, { stdio: "inherit" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

const given = environmentArgs(args);
// Several environments are defined (wrangler.toml): say which one, so a deploy never lands by accident.
const environment = given.length > 0 ? given : ["--env="];
const target = given.length > 0 ? given.join(" ").replace(/^(--env=?|-e=?)\s*/, "") : "production";

console.log(`Deploying to ${target || "production"}${dryRun ? " (dry run: nothing is uploaded)" : ""}`);
await buildWeb();
if (dryRun) {
  console.log("--dry-run: the remote D1 migrations are skipped");
} else {
  run("wrangler", ["d1", "migrations", "apply", "DB", "--remote", ...environment]);
}
run("wrangler", ["deploy", ...(given.length > 0 ? [] : environment), ...args]);
