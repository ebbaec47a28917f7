// The `[build]` command in wrangler.toml: `wrangler deploy` (and `wrangler versions upload`) build the
// reference pages into web/dist before reading it as the assets directory, so a plain deploy never ships
// stale or missing pages. Wrangler tells its command in WRANGLER_COMMAND. Under `wrangler dev`, an
// existing web/dist is left alone: `npm run dev` and the browser tests build it (and keep it fresh)
// themselves, and wrangler reruns this on every change in src/, which would empty web/dist under the
// running server.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { buildWeb, WEB_DIST } from "./build-web.mjs";

if (process.env.WRANGLER_COMMAND === "dev" && existsSync(join(WEB_DIST, "index.html"))) {
  console.log("web/dist is already built; wrangler dev serves it as it is");
} else {
  const started = performance.now();
  await buildWeb();
  console.log(`web/dist built in ${Math.round(performance.now() - started)} ms`);
}
