// The product Worker plus the floors the benchmark compares against. Bench-only: it is bundled by
// bench/start.ts and never deployed (wrangler.toml's main is src/index.ts).
import { DurableObject } from "cloudflare:workers";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { TICKET_QR_AUDIENCE, TICKET_QR_TYP, verifyQrToken } from "../src/auth/qr-token";
import { type Env, loadConfig } from "../src/env";
import { requireOperator } from "../src/http/auth";
import type { AppEnv } from "../src/http/context";
import { qrTokenRefused } from "../src/http/refusals";
import product, {
  TicketObject as ProductTicketObject,
  WalletObject as ProductWalletObject,
} from "../src/index";
import type { EventMessage } from "../src/queues/messages";

interface BenchEnv extends Env {
  BENCH_FLOOR: DurableObjectNamespace<BenchFloorObject>;
}

/** The cheapest useful Durable Object call: one RPC that does one SQLite write. */
export class BenchFloorObject extends DurableObject<BenchEnv> {
  constructor(ctx: DurableObjectState, env: BenchEnv) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)");
  }

  write(): number {
    return this.ctx.storage.sql.exec("INSERT INTO writes (at) VALUES (?)", Date.now()).rowsWritten;
  }
}

/**
 * A diagnostic, never a result: while true, the ticket and wallet objects' queue sends are dropped (the
 * outbox is emptied as if the queue took them). The `_unsent` scenarios run with it, right after their
 * real twins, to measure what the objects cost without the per-object send and its consumer, since the
 * local queue broker runs in this same workerd on the same two cores. Their events never reach D1, which
 * no later scenario reads. The objects share this isolate's module scope with the fetch handler locally.
 */
let dropObjectSends = false;

/** What a dropped send answers: the queue's own response shape, with nothing in it. */
const DROPPED = { metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } };

function withDroppableSends(env: Env): Env {
  const queue = env.EVENTS;
  const events: Queue<EventMessage> = {
    metrics: () => queue.metrics(),
    send: (body, options) => (dropObjectSends ? Promise.resolve(DROPPED) : queue.send(body, options)),
    sendBatch: (messages, options) =>
      dropObjectSends ? Promise.resolve(DROPPED) : queue.sendBatch(messages, options),
  };
  return { ...env, EVENTS: events };
}

export class TicketObject extends ProductTicketObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, withDroppableSends(env));
  }
}

export class WalletObject extends ProductWalletObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, withDroppableSends(env));
  }
}

/** Objects the DO floor spreads over by default; the bench passes the scan scenario's ticket count. */
const DEFAULT_FLOOR_OBJECTS = 100;
/** Rows the D1 floor's conditional UPDATE picks from. */
const D1_FLOOR_ROWS = 100;

/**
 * What the fixed stack itself costs for a scan-shaped request, with none of the product's own work: a Hono
 * + zod-openapi route validating the same body, the operator token check, the EdDSA QR token check, and
 * the floor's one object write. The gap between this and `floor_do` is the stack's; the gap between the
 * scan and this is the product's.
 */
const skeleton = new OpenAPIHono<AppEnv & { Bindings: BenchEnv }>();
skeleton.use(async (c, next) => {
  c.set("config", loadConfig(c.env));
  await next();
});
skeleton.openapi(
  createRoute({
    method: "post",
    path: "/__bench/scan-skeleton",
    middleware: [requireOperator("gate")] as const,
    request: {
      body: {
        content: {
          "application/json": {
            schema: z
              .object({
                qr_token: z.string().min(1).max(4_096),
                function: z.string().min(1).max(32),
                session_id: z.string().min(1).max(64),
              })
              .strict(),
          },
        },
      },
    },
    responses: { 200: { description: "written" } },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const verified = await verifyQrToken(c.get("config"), body.qr_token, {
      typ: TICKET_QR_TYP,
      audience: TICKET_QR_AUDIENCE,
    });
    if (!verified.ok) throw qrTokenRefused(verified);
    const floor = c.env.BENCH_FLOOR.get(c.env.BENCH_FLOOR.idFromName(`skeleton-${verified.token.subject}`));
    return c.json({ written: await floor.write() }, 200);
  },
);

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const { pathname } = url;
    if (pathname === "/__bench/floor") return new Response("ok");
    if (pathname === "/__bench/floor-do") {
      const objects = Number(url.searchParams.get("objects") ?? DEFAULT_FLOOR_OBJECTS);
      const index = url.searchParams.has("index")
        ? Number(url.searchParams.get("index"))
        : Math.floor(Math.random() * objects);
      const name = `floor-${index}`;
      const written = await env.BENCH_FLOOR.get(env.BENCH_FLOOR.idFromName(name)).write();
      return Response.json({ written });
    }
    if (pathname === "/__bench/floor-do-hot") {
      const written = await env.BENCH_FLOOR.get(env.BENCH_FLOOR.idFromName("hot")).write();
      return Response.json({ written });
    }
    if (pathname === "/__bench/object-sends" && request.method === "POST") {
      dropObjectSends = url.searchParams.get("drop") === "1";
      return Response.json({ dropping: dropObjectSends });
    }
    if (pathname === "/__bench/scan-skeleton") return skeleton.fetch(request, env, ctx);
    if (pathname === "/__bench/d1-floor") {
      const id = Math.floor(Math.random() * D1_FLOOR_ROWS);
      const result = await env.DB.prepare("UPDATE bench_counter SET n = n + 1 WHERE id = ? AND n >= 0")
        .bind(id)
        .run();
      return Response.json({ changed: result.meta.changes });
    }
    return product.fetch(request, env, ctx);
  },
  scheduled: product.scheduled,
  queue: product.queue,
} satisfies ExportedHandler<BenchEnv>;
