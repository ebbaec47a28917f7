// `npm run dev [-- --port N]`: one command from a fresh clone to a running, migrated, seeded API.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";
import { buildWeb } from "./build-web.mjs";
import { seedLocalDatabase } from "./seed.mjs";

const wrangler = "wrangler";
const args = process.argv.slice(2);

function run(command, commandArgs) {
  const result = spawnSync(command, commandArgs, { stdio: "inherit", shell: false });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("Created .dev.vars from .dev.vars.example (local secrets only).");
}
// The reference pages are served from web/dist: built now, rebuilt on every change while dev runs.
await buildWeb({ watch: true });
run(wrangler, ["d1", "migrations", "apply", "DB", "--local"]);
await seedLocalDatabase();

const port = args.includes("--port") ? [] : ["--port", "8787"];
const child = spawn(wrangler, ["dev", "--local", "--test-scheduled", ...port, ...args], { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code) => process.exit(code ?? 0));
