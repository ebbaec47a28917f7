import { randomUUID } from "node:crypto";

// Setting the scene from Node through the same public API (and the dev-only helpers) the pages use.

export const DEMO_PASSWORD = "demo-password-123";
export const HARBOUR_PASS = "prd_seed_harbour_pass";

export async function call<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; idempotencyKey?: string } = {},
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.idempotencyKey) headers["idempotency-key"] = options.idempotencyKey;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}

function expectStatus(result: { status: number; body: unknown }, status: number, what: string): void {
  if (result.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${result.status} ${JSON.stringify(result.body)}`);
  }
}

export async function demoBuyer(base: string): Promise<string> {
  const result = await call<{ token: string }>(base, "POST", "/dev/buyer-token", { body: {} });
  expectStatus(result, 201, "demo buyer token");
  return result.body.token;
}

export interface Ticket {
  code: string;
  entitlements: { function: string; total_uses: number; remaining_uses: number }[];
}

/** Buys one Harbour Pass for `token`, pays it with a signed (simulated) webhook, returns the ticket. */
export async function paidTicket(base: string, token: string): Promise<Ticket> {
  const order = await call<{ order_id: string }>(base, "POST", "/orders", {
    token,
    idempotencyKey: randomUUID(),
    body: { items: [{ product_id: HARBOUR_PASS, quantity: 1 }] },
  });
  expectStatus(order, 201, "order");
  const paid = await call(base, "POST", "/dev/simulate-payment", {
    token,
    body: { order_id: order.body.order_id },
  });
  expectStatus(paid, 200, "simulated payment");
  const tickets = await call<{ tickets: (Ticket & { order_id: string })[] }>(base, "GET", "/my/tickets", {
    token,
  });
  const ticket = tickets.body.tickets.find((candidate) => candidate.order_id === order.body.order_id);
  if (!ticket) throw new Error("the paid order has no ticket");
  return ticket;
}

export async function staffToken(base: string, username: string): Promise<string> {
  const result = await call<{ operator_token: string }>(base, "POST", "/operators/login", {
    body: { username, password: DEMO_PASSWORD },
  });
  expectStatus(result, 200, `login ${username}`);
  return result.body.operator_token;
}
