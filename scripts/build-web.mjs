// `npm run build:web [-- --watch]`: bundles the reference pages (web/) into web/dist, which wrangler.toml
// serves as static assets next to the API. Plain TypeScript modules, one bundle per page; jsQR is split
// into its own chunk because only a browser without BarcodeDetector downloads it.
import { cpSync, mkdirSync, rmSync, watch as watchDirectory } from "node:fs";
import { createRequire } from "node:module";
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

/**
 * /docs (web/pages/docs.html) renders the OpenAPI document with Swagger UI, served from our own origin:
 * its browser bundle and stylesheet are copied from the swagger-ui-dist package (with its licence), and the
 * page's small start-up module is built apart from the pages' bundles, which it shares nothing with.
 */
const API_REFERENCE_FILES = ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"];
const API_REFERENCE_DIST = join(WEB_DIST, "assets", "api-reference");

async function buildApiReference() {
  const swaggerUi = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  mkdirSync(API_REFERENCE_DIST, { recursive: true });
  for (const file of API_REFERENCE_FILES) cpSync(join(swaggerUi, file), join(API_REFERENCE_DIST, file));
  await build({
    absWorkingDir: root,
    entryPoints: ["web/src/docs.ts"],
    outfile: join(WEB_DIST, "assets", "docs.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: options.target,
    minify: true,
    logLevel: "warning",
  });
}

/** One clean build; with `watch`, keeps rebuilding on changes until the process exits. */
export async function buildWeb({ watch = false } = {}) {
  rmSync(WEB_DIST, { recursive: true, force: true });
  mkdirSync(WEB_DIST, { recursive: true });
  copyStatic();
  await buildApiReference();
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
