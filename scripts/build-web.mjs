// `npm run build:web [-- --watch]`: bundles the reference pages (web/) into web/dist, which wrangler.toml
// serves as static assets next to the API. Plain TypeScript modules, one bundle per page; jsQR is split
// into its own chunk because only a browser without BarcodeDetector downloads it.
import { cpSync, mkdirSync, rmSync, watch as watchDirectory } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build, context } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const web = join(root, "web");
export const WEB_DIST = join(web, "dist");
const STATIC_DIRECTORIES = [join(web, "pages"), join(web, "public")];

function copyStatic() {
  for (const directory of STATIC_DIRECTORIES) cpSync(directory, WEB_DIST, { recursive: true });
}

const options = {
  absWorkingDir: root,
  entryPoints: ["buyer", "gate", "pos", "reports", "admin"]
    .map((page) => `web/src/${page}.ts`)
    .concat("web/src/styles.css"),
  outdir: join(WEB_DIST, "assets"),
  entryNames: "[name]",
  chunkNames: "chunk-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome111", "safari16.4", "firefox115"],
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
};

/** One clean build; with `watch`, keeps rebuilding on changes until the process exits. */
export async function buildWeb({ watch = false } = {}) {
  rmSync(WEB_DIST, { recursive: true, force: true });
  mkdirSync(WEB_DIST, { recursive: true });
  copyStatic();
  if (!watch) {
    await build(options);
    return;
  }
  const ctx = await context(options);
  await ctx.rebuild();
  await ctx.watch();
  for (const directory of STATIC_DIRECTORIES) watchDirectory(directory, { recursive: true }, copyStatic);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const watch = process.argv.includes("--watch");
  const started = performance.now();
  await buildWeb({ watch });
  console.log(
    `web/dist built in ${Math.round(performance.now() - started)} ms${watch ? "; watching web/" : ""}`,
  );
}
