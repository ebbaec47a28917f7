import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { buildApp } from "../../src/app";
import type { Env } from "../../src/env";

// The suite runs with ENVIRONMENT=test, where the development helpers (demo buyers, simulated payments,
// the mail page) must not exist; their behaviour is driven through a copy of the app given a development
// environment (a new env object, so its config is parsed afresh).

const developmentEnv = { ...env, ENVIRONMENT: "development" } as Env;
const developmentApp = buildApp();

/** One request to the app as `npm run dev` serves it, waiting for what it left running. */
export async function developmentFetch(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; idempotencyKey?: string } = {},
): Promise<Response> {
  const headers = new Headers();
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  if (options.idempotencyKey) headers.set("idempotency-key", options.idempotencyKey);
  if (options.body !== undefined) headers.set("content-type", "application/json");
  const ctx = createExecutionContext();
  const response = await developmentApp.fetch(
    new Request(`https://passes.test${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    }),
    developmentEnv,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
}
