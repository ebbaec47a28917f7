// The product Worker plus the floors the benchmark compares against. Bench-only: it is bundled by
// bench/start.ts and never deployed (wrangler.toml's main is src/index.ts).
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import product from "../src/index";

export { TicketObject, WalletObject } from "../src/index";

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

/** Objects the DO floor spreads over by default; the bench passes the scan scenario's ticket count. */
const DEFAULT_FLOOR_OBJECTS = 100;
/** Rows the D1 floor's conditional UPDATE picks from. */
const D1_FLOOR_ROWS = 100;

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
