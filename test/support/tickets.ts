import type { RedeemRequest, ScanSession } from "../../src/objects/ticket";
import type { ProductFunction } from "../../src/types/domain";
import { operatorToken, seedProduct } from "./fixtures";
import { callJson } from "./http";
import { openSession, registeredDevice } from "./staff";
import { deliver, paymentFor, pendingOrder } from "./webhooks";

export interface PaidTicket {
  code: string;
  userId: string;
  buyerToken: string;
  orderId: string;
}

/** Buys and pays for `quantity` tickets of a fresh product through the API; returns the first ticket. */
export async function paidTickets(functions: ProductFunction[], quantity = 1): Promise<PaidTicket[]> {
  const product = await seedProduct({ functions, sellable: 1_000 });
  const userId = `buyer-${crypto.randomUUID()}`;
  const order = await pendingOrder(userId, [{ product_id: product.id, quantity }]);
  const paid = await deliver(paymentFor(order));
  if (paid.status !== 200) throw new Error(`payment failed: ${paid.status}`);
  const mine = await callJson<{ tickets: { code: string; order_id: string }[] }>("GET", "/my/tickets", {
    token: order.token,
  });
  return mine.body.tickets
    .filter((ticket) => ticket.order_id === order.order_id)
    .map((ticket) => ({ code: ticket.code, userId, buyerToken: order.token, orderId: order.order_id }));
}

export async function paidTicket(functions: ProductFunction[]): Promise<PaidTicket> {
  const [ticket] = await paidTickets(functions);
  if (!ticket) throw new Error("no ticket issued");
  return ticket;
}

export async function qrToken(ticket: PaidTicket): Promise<string> {
  const response = await callJson<{ token: string }>("POST", `/tickets/${ticket.code}/qr-token`, {
    token: ticket.buyerToken,
  });
  if (response.status !== 200) throw new Error(`qr-token failed: ${response.status}`);
  return response.body.token;
}

/** A gate operator with an open session on a fresh gate device at `location`. */
export async function gateSession(options: { location?: string; functions?: string[] } = {}) {
  const operator = await operatorToken(["gate"]);
  const deviceId = await registeredDevice({
    kind: "gate",
    location_id: options.location ?? "loc-test",
    functions: options.functions,
  });
  const session = await openSession(operator.token, { device_id: deviceId });
  if (session.status !== 201) throw new Error(`session failed: ${session.status}`);
  return {
    token: operator.token,
    operatorId: operator.operatorId,
    sessionId: session.body.session_id,
    deviceId,
  };
}

export interface ScanBody {
  result?: string;
  code?: string;
  redemption_id?: string;
  entitlements?: { function: string; total_uses: number; remaining_uses: number }[];
}

export function scan(gate: { token: string; sessionId: string }, qr: string, fn: string) {
  return callJson<ScanBody>("POST", "/tickets/scan", {
    token: gate.token,
    body: { qr_token: qr, function: fn, session_id: gate.sessionId },
  });
}

/** The gate session object-level tests scan under: the route's session checks are not in play there. */
export const OBJECT_SCAN_SESSION: ScanSession = {
  sessionId: "ses_obj",
  operatorId: "opr_obj",
  deviceId: "dev-obj",
  locationId: "loc-obj",
};

/** A scan as the route hands it to a ticket's object: a fresh scan id and jti, a token good for 30 s. */
export function redeemRequest(code: string, overrides: Partial<RedeemRequest> = {}): RedeemRequest {
  return {
    ticketCode: code,
    scanId: crypto.randomUUID(),
    fn: "bus",
    jti: crypto.randomUUID(),
    tokenExpiresAt: Math.floor(Date.now() / 1000) + 30,
    session: OBJECT_SCAN_SESSION,
    ...overrides,
  };
}
