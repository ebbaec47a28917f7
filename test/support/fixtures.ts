import { env } from "cloudflare:workers";
import { hashPassword } from "../../src/auth/password";
import { createProduct } from "../../src/db/catalog";
import { getDb } from "../../src/db/client";
import { createOperator } from "../../src/db/operators";
import type { DoLocationHint } from "../../src/domain/placement";
import type { OperatorRole, ProductFunction } from "../../src/types/domain";
import { callJson } from "./http";

export const db = () => getDb(env.DB);

export async function seedProduct(
  options: {
    sellable?: number;
    price_cents?: number;
    functions?: ProductFunction[];
    name?: string;
    venue_region?: DoLocationHint;
  } = {},
) {
  return createProduct(
    db(),
    env.EVENTS,
    {
      name: options.name ?? "Harbour Pass",
      description: "",
      price_cents: options.price_cents ?? 2_500,
      sellable: options.sellable ?? 100,
      functions: options.functions ?? [
        { function: "bus", uses: 10 },
        { function: "ferry", uses: 2 },
      ],
      venue_region: options.venue_region,
    },
    env.CURRENCY ?? "EUR",
    new Date(),
  );
}

export const TEST_PASSWORD = "correct-horse-battery";

/** Creates an operator directly in D1 and logs in through the API; returns the operator token. */
export async function operatorToken(roles: OperatorRole[], eventIds: string[] = []) {
  const username = `op-${crypto.randomUUID().slice(0, 8)}`;
  const created = await createOperator(
    db(),
    env.EVENTS,
    { username, passwordHash: await hashPassword(TEST_PASSWORD), roles, eventIds },
    "system:test",
    new Date(),
  );
  if (!created.ok) throw new Error(`operator not created: ${created.code}`);
  const login = await callJson<{ operator_token: string }>("POST", "/operators/login", {
    body: { username, password: TEST_PASSWORD },
  });
  if (login.status !== 200) throw new Error(`login failed: ${login.status}`);
  return { token: login.body.operator_token, operatorId: created.operator.operator_id, username };
}
