// POS deduction scenarios: across many wallets, and many deductions from one hot wallet.
import { load, type ScenarioResult } from "./load";
import { type Api, buyerToken, deviceSessionFor, signedDelivery } from "./setup";

interface Context {
  api: Api;
  base: string;
  sign: (typ: "ticket-qr+jwt" | "wallet-qr+jwt", subject: string, ttlSeconds: number) => Promise<string>;
  connections: number;
  seconds: number;
  warmup: number;
  log: (message: string) => void;
  /** Runs the measured load and records it under the scenario's name. */
  measure: (name: string, run: () => Promise<ScenarioResult>) => Promise<ScenarioResult>;
  /** Runs a diagnostic twin with the objects' queue sends dropped (see bench/bench-worker.ts). */
  withObjectSendsDropped: <T>(run: () => Promise<T>) => Promise<T>;
}

const WALLETS = 100;
const TOPUP_CENTS = 50_000;

async function fund(ctx: Context, userId: string) {
  const token = await buyerToken(ctx.api, userId);
  const topup = await fetch(`${ctx.base}/wallet/topups`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${token}`,
      "idempotency-key": crypto.randomUUID(),
    },
    body: JSON.stringify({ amount_cents: TOPUP_CENTS }),
  }).then((r) => r.json() as Promise<{ topup_id: string }>);
  const delivery = signedDelivery(ctx.api, {
    payment_id: `pay_${crypto.randomUUID()}`,
    reference: topup.topup_id,
    status: "SUCCESS",
    amount_cents: TOPUP_CENTS,
    currency: "EUR",
  });
  const paid = await fetch(`${ctx.base}/payments/webhook`, {
    method: "POST",
    headers: { "content-type": "application/json", ...delivery.headers },
    body: delivery.body,
  });
  if (!paid.ok) throw new Error(`top-up webhook failed: ${paid.status}`);
}

export async function runDeductionScenarios(ctx: Context): Promise<void> {
  const users = Array.from({ length: WALLETS }, (_, i) => `bench-wallet-${i}`);
  ctx.log("… funding wallets");
  for (let i = 0; i < users.length; i += 20)
    await Promise.all(users.slice(i, i + 20).map((user) => fund(ctx, user)));
  const { token: pos, sessionId } = await deviceSessionFor(ctx.api, "pos-demo", "dev-pos-1");

  const run = async (seconds: number, pick: (i: number) => string) => {
    const bodies = await Promise.all(
      Array.from({ length: Math.ceil(seconds * 2_000) }, async (_, i) =>
        JSON.stringify({
          qr_token: await ctx.sign("wallet-qr+jwt", pick(i), 90),
          amount_cents: 1,
          session_id: sessionId,
        }),
      ),
    );
    let i = 0;
    return load({
      url: `${ctx.base}/pos/deductions`,
      method: "POST",
      headers: { authorization: `Bearer ${pos}` },
      connections: ctx.connections,
      durationSeconds: seconds,
      next: () => ({
        body: bodies[i++ % bodies.length],
        headers: { "idempotency-key": crypto.randomUUID() },
      }),
    });
  };
  const scenario = async (name: string, pick: (i: number) => string) => {
    ctx.log(`▶ ${name}`);
    await run(ctx.warmup, pick);
    await ctx.measure(name, () => run(ctx.seconds, pick));
  };
  const anyWallet = (i: number) => users[i % users.length] ?? "";
  await scenario("deduct_many_wallets", anyWallet);
  await ctx.withObjectSendsDropped(() => scenario("deduct_many_wallets_unsent", anyWallet));
  await scenario("deduct_hot_wallet", () => users[0] ?? "");
}
