import type { TestProject } from "vitest/node";
import { buildWeb } from "../../scripts/build-web.mjs";
import { startApp } from "./support/app";
import { assertChromium } from "./support/browser";

// One app for the whole browser suite: each test makes its own buyer, so tests share it without
// interfering. The local runtime stays offline: no Request.cf download, no telemetry.
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
process.env.WRANGLER_SEND_METRICS = "false";

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
  }
}

export default async function setup(project: TestProject) {
  assertChromium();
  await buildWeb();
  const app = await startApp();
  project.provide("baseUrl", app.url);
  return () => app.stop();
}
