import { env } from "cloudflare:workers";
import { vi } from "vitest";
import { type Config, type Env, loadConfig } from "../../src/env";
import { testEmailOf } from "./tokens";

const RESEND_API = "https://api.resend.com/";

/** Gives `userId` a known address, as their first order or top-up with an `email` claim would. */
export async function rememberEmail(userId: string, email = testEmailOf(userId)): Promise<void> {
  await env.DB.prepare(
    "INSERT INTO buyer_contacts (user_id, email, updated_at) VALUES (?, ?, ?) " +
      "ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, updated_at = excluded.updated_at",
  )
    .bind(userId, email, new Date().toISOString())
    .run();
}

/** The test configuration with Resend chosen as the mailer (a new env object: parsed afresh). */
export function resendConfig(overrides: Partial<Env> = {}): Config {
  return loadConfig({
    ...(env as Env),
    MAIL_PROVIDER: "resend",
    RESEND_API_KEY: "re_test_key",
    MAIL_FROM: "Passes <receipts@passes.test>",
    ...overrides,
  });
}

export interface ResendRequest {
  method: string;
  path: string;
  idempotencyKey: string | null;
  authorization: string | null;
  body: { from: string; to: string | string[]; subject: string; text: string; html: string };
}

/** How the fake answers: as Resend does, with a server error, or not at all (the connection fails). */
export type ResendBehaviour = "accept" | "http_500" | "network_error" | "rate_limited";

/**
 * Replaces Resend's API for the calling test: only requests to https://api.resend.com/ are intercepted,
 * anything else goes to the real fetch. Like Resend, a repeated Idempotency-Key answers the first
 * answer and mails nothing new (or, with another payload, is refused with 409), so `mailed` counts emails a buyer would receive and `requests` every
 * POST. The worker code called from a test runs in the test's isolate, so it sees the stub.
 */
export function fakeResend() {
  const originalFetch = globalThis.fetch;
  const requests: ResendRequest[] = [];
  const mailed = new Map<string, { id: string; body: ResendRequest["body"] }>();
  let behaviour: ResendBehaviour | ((request: ResendRequest) => ResendBehaviour) = "accept";
  let emailSeq = 0;

  const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    if (!request.url.startsWith(RESEND_API)) return originalFetch(input, init);
    const body = (await request.json()) as ResendRequest["body"];
    const idempotencyKey = request.headers.get("idempotency-key");
    const seen: ResendRequest = {
      method: request.method,
      path: new URL(request.url).pathname,
      idempotencyKey,
      authorization: request.headers.get("authorization"),
      body,
    };
    requests.push(seen);
    const answer = typeof behaviour === "function" ? behaviour(seen) : behaviour;
    if (answer === "network_error") throw new TypeError("Network connection lost.");
    if (answer === "rate_limited") {
      return Response.json(
        {
          statusCode: 429,
          name: "rate_limit_exceeded",
          message: "Too many requests. You can only make 2 requests per second.",
        },
        { status: 429, headers: { "retry-after": "1" } },
      );
    }
    if (answer === "http_500") {
      return Response.json(
        { statusCode: 500, name: "internal_server_error", message: "An unexpected error occurred." },
        { status: 500 },
      );
    }
    const earlier = idempotencyKey ? mailed.get(idempotencyKey) : undefined;
    if (earlier) {
      // Resend: the same key with another payload is refused, the email having gone out with the first.
      if (JSON.stringify(earlier.body) !== JSON.stringify(body)) {
        return Response.json(
          {
            statusCode: 409,
            name: "invalid_idempotent_request",
            message: "Same idempotency key used with a different request payload.",
          },
          { status: 409 },
        );
      }
      return Response.json({ id: earlier.id });
    }
    const email = { id: `email-${++emailSeq}`, body };
    mailed.set(idempotencyKey ?? email.id, email);
    return Response.json({ id: email.id });
  });

  return {
    requests,
    /** Emails delivered, by idempotency key. */
    mailed,
    /** How to answer from now on: always the same way, or decided per request. */
    behave(next: ResendBehaviour | ((request: ResendRequest) => ResendBehaviour)) {
      behaviour = next;
    },
    restore() {
      spy.mockRestore();
    },
  };
}
