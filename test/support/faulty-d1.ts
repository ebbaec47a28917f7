import { env } from "cloudflare:workers";
import { buildApp } from "../../src/app";
import type { Env } from "../../src/env";

export type FaultTiming = "before" | "after";

/**
 * A D1 binding that fails the n-th batch (1-based): "before" throws without running it (the database
 * refused), "after" runs and commits it and then throws (the answer was lost on the way back). Everything
 * else goes to the real database.
 */
export function faultyD1(failBatch: number, timing: FaultTiming): D1Database {
  const real = env.DB;
  let batches = 0;
  // Batches made on the binding and in any of its sessions (every request runs in one) count together.
  const faultyBatch = async <T>(
    batch: (statements: D1PreparedStatement[]) => Promise<D1Result<T>[]>,
    statements: D1PreparedStatement[],
  ) => {
    batches++;
    if (batches === failBatch && timing === "before")
      throw new Error("D1_ERROR: injected failure before commit");
    const result = await batch(statements);
    if (batches === failBatch && timing === "after")
      throw new Error("D1_ERROR: injected failure after commit");
    return result;
  };
  return new Proxy(real, {
    get(target, property, receiver) {
      if (property === "batch") {
        return (statements: D1PreparedStatement[]) => faultyBatch((s) => target.batch(s), statements);
      }
      if (property === "withSession") {
        return (constraintOrBookmark?: string) => {
          const session = target.withSession(constraintOrBookmark);
          return {
            prepare: (query: string) => session.prepare(query),
            batch: (statements: D1PreparedStatement[]) => faultyBatch((s) => session.batch(s), statements),
            getBookmark: () => session.getBookmark(),
          } as D1DatabaseSession;
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const app = buildApp();

/** Calls the app with `DB` swapped for `db` (a fresh env object, so the per-env caches start clean). */
export async function callWith(db: D1Database, request: Request): Promise<Response> {
  const faultyEnv: Env = { ...(env as Env), DB: db };
  const ctx = { waitUntil: () => undefined, passThroughOnException: () => undefined, props: {} };
  return app.fetch(request, faultyEnv, ctx as unknown as ExecutionContext);
}
