// `npm run build:web [-- --watch]`: bundles the reference pages (web/) into web/dist, which wrangler.toml
// serves as static assets next to the API. Plain TypeScript modules, one bundle per page; jsQR is split
// into its own chunk because only a browser without BarcodeDetector downloads it. The gate's service
// worker is built after the pages, with the list of files the gate needs offline.
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, rmSync, watch as watchDirectory } from "node:fs";
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
  metafile: true,
  plugins: [{ name: "gate-service-worker", setup: (build) => build.onEnd(buildGateServiceWorker) }],
};

/**
 * What /gate needs to work with no network, beside its bundle and every chunk the bundle imports (read
 * from esbuild's metafile, since their names carry a content hash; jsQR too, which a phone without
 * BarcodeDetector loads only when the camera starts, perhaps offline): the page itself under the URL it is
 * opened at (html_handling serves gate.html as /gate), and what the page links.
 */
const GATE_SHELL = {
  "/gate": "gate.html",
  "/gate.webmanifest": "gate.webmanifest",
  "/favicon.svg": "favicon.svg",
  "/assets/styles.css": "assets/styles.css",
};
const GATE_BUNDLE = "web/dist/assets/gate.js";

/** `output` and every chunk it imports, directly or not, statically or lazily. */
function chunksOf(metafile, output, seen = new Set()) {
  if (seen.has(output)) return seen;
  seen.add(output);
  for (const imported of metafile.outputs[output]?.imports ?? []) {
    if (!imported.external) chunksOf(metafile, imported.path, seen);
  }
  return seen;
}

/**
 * web/src/gate-sw.ts → web/dist/gate-sw.js, as a classic script (module service workers are not
 * everywhere yet), at the root so that it may control /gate. Its cache is named after a hash of what it
 * precaches, so every build that changes the page also changes the worker, and browsers install it.
 */
async function buildGateServiceWorker(pagesResult) {
  if (pagesResult.errors.length > 0 || !pagesResult.metafile) return;
  const bundle = [...chunksOf(pagesResult.metafile, GATE_BUNDLE)].map((path) =>
    path.replace(/^web\/dist\//, ""),
  );
  const files = { ...GATE_SHELL, ...Object.fromEntries(bundle.map((path) => [`/${path}`, path])) };
  const hash = createHash("sha256");
  for (const path of Object.values(files)) hash.update(path).update(readFileSync(join(WEB_DIST, path)));
  const shell = { version: hash.digest("hex").slice(0, 16), urls: Object.keys(files) };
  await build({
    absWorkingDir: root,
    entryPoints: ["web/src/gate-sw.ts"],
    outfile: join(WEB_DIST, "gate-sw.js"),
    bundle: true,
    format: "iife",
    platform: "browser",
    target: options.target,
    minify: true,
    sourcemap: "linked",
    logLevel: "warning",
    define: { __GATE_SHELL__: JSON.stringify(shell) },
  });
}

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
