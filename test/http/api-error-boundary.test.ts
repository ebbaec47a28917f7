import { describe, it } from "vitest";

// Errors become HTTP at the edge only: rules, stores, objects, services and token checks answer typed
// outcomes, and only the routes and src/http turn them into problems (`ApiError`, src/errors.ts). Tests
// run in workerd, which cannot read files: Vite inlines the sources when it transforms this file.

const SOURCES = import.meta.glob<string>("../../src/**/*.ts", {
  query: "?raw",
  import: "default",
  eager: true,
});
const SRC_PREFIX = "../../src/";

/** Where problems are made: the routes, the HTTP layer, and the error table itself. */
const EDGE = [/^routes\//, /^http\//, /^errors\.ts$/];

/** Outside the folders above but part of the HTTP edge all the same. */
const ALSO_EDGE: Record<string, string> = {
  "app.ts": "builds the app: its onError, notFound and body limit answer problems",
  "observability/metrics.ts": "middleware that labels a request's metrics with the problem it answered",
};

/**
 * Still throwing problems below the edge, each with what keeps it there. An entry that no longer uses
 * ApiError fails the test below, so the list only shrinks.
 */
const NOT_YET_CONVERTED: Record<string, string> = {};

/** The source without comments, so that prose naming ApiError is not mistaken for a use of it. */
function code(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

const usesApiError = (source: string) => /\bApiError\b/.test(code(source));

const files = Object.entries(SOURCES).map(([path, source]) => ({
  path: path.slice(SRC_PREFIX.length),
  source,
}));

describe("ApiError stays at the HTTP edge", () => {
  it("reads the sources (a glob that matched nothing would pass vacuously)", ({ expect }) => {
    expect(files.length).toBeGreaterThan(50);
    expect(files.some((file) => file.path === "errors.ts" && usesApiError(file.source))).toBe(true);
  });

  it("is used nowhere under src/ but in routes, http and errors.ts", ({ expect }) => {
    const offenders = files
      .filter(({ path }) => !EDGE.some((edge) => edge.test(path)))
      .filter(({ path }) => !(path in ALSO_EDGE) && !(path in NOT_YET_CONVERTED))
      .filter(({ source }) => usesApiError(source))
      .map(({ path }) => path);
    expect(offenders).toEqual([]);
  });

  it("lists as not yet converted only files that still use it", ({ expect }) => {
    const converted = Object.keys(NOT_YET_CONVERTED).filter((path) => {
      const file = files.find((candidate) => candidate.path === path);
      return !file || !usesApiError(file.source);
    });
    expect(converted).toEqual([]);
  });
});
