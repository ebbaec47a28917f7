import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_startWorker } from "wrangler";
import { seedLocalDatabase } from "../../../scripts/seed.mjs";

// The app as `npm run dev` serves it (wrangler's dev server: assets, D1, Durable Objects, queues), on a
// random localhost port, with its own empty local state, migrated and seeded like a fresh clone, and the
// development variables of .dev.vars.example.

export interface RunningApp {
  url: string;
  stop(): Promise<void>;
}

/** KEY=VALUE lines, as wrangler reads .dev.vars. */
export function readDevVars(path: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const match = line.match(/^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/);
    if (match?.[1] && match[2] !== undefined) vars[match[1]] = match[2].replace(/^"(.*)"$/, "$1");
  }
  return vars;
}

function wrangler(args: string[]): void {
  const result = spawnSync("wrangler", args, { encoding: "utf8" });
  if (result.status !== 0)
    throw new Error(`wrangler ${args.join(" ")} failed:\n${result.stderr || result.stdout}`);
}

/** `vars` override or add to the development variables (e.g. another payment provider). */
export async function startApp(options: { vars?: Record<string, string> } = {}): Promise<RunningApp> {
  const persistTo = mkdtempSync(join(tmpdir(), "passes-e2e-"));
  wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo]);
  await seedLocalDatabase({ persistTo });

  // An empty env file in place of the default keeps a developer's own .dev.vars out of the run.
  const envFile = join(persistTo, "e2e.env");
  writeFileSync(envFile, "");
  const bindings = Object.fromEntries(
    Object.entries({ ...readDevVars(".dev.vars.example"), ...options.vars }).map(([name, value]) => [
      name,
      { type: "plain_text" as const, value },
    ]),
  );
  const worker = await unstable_startWorker({
    config: "wrangler.toml",
    envFiles: [envFile],
    bindings,
    dev: {
      server: { hostname: "127.0.0.1", port: 0 },
      inspector: false,
      persist: persistTo,
      watch: false,
      logLevel: "warn",
    },
  });
  await worker.ready;
  const url = (await worker.url).origin;
  return {
    url,
    stop: async () => {
      await worker.dispose();
      rmSync(persistTo, { recursive: true, force: true });
    },
  };
}
