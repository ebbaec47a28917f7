import { env } from "cloudflare:workers";
import { buildApp } from "../../src/app";
import type { Env } from "../../src/env";

// What a request costs in round trips: the app is called with its D1 and Durable Object bindings
// wrapped, and every call that leaves the isolate is counted. A D1 round trip is a batch or one
// statement run (run/all/first/raw); an object round trip is one RPC on a stub. `idFromName` and `get`
// make no round trip and are not counted.

export interface CallCounts {
  d1: number;
  /** D1 round trips that were batches (part of `d1`). */
  d1Batches: number;
  objects: number;
  queueSends: number;
  /** What each D1 session was started with (a constraint or a bookmark), in order. */
  sessions: string[];
  /** The location hint of each object stub taken (null: none), in order. */
  placements: (string | null)[];
}

const STATEMENT_ROUND_TRIPS = new Set(["run", "all", "first", "raw"]);

/** The real statement behind a counting proxy, for batch(), which needs the runtime's own objects. */
const unwrapped = new WeakMap<object, D1PreparedStatement>();

function countingStatement(statement: D1PreparedStatement, counts: CallCounts): D1PreparedStatement {
  const proxy = new Proxy(statement, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      if (STATEMENT_ROUND_TRIPS.has(String(property))) {
        return (...args: unknown[]) => {
          counts.d1 += 1;
          return value.apply(target, args);
        };
      }
      if (property === "bind") {
        return (...args: unknown[]) => countingStatement(value.apply(target, args), counts);
      }
      return value.bind(target);
    },
  });
  unwrapped.set(proxy, statement);
  return proxy;
}

/** A D1 session whose round trips are counted like the binding's. */
function countingSession(real: D1DatabaseSession, counts: CallCounts): D1DatabaseSession {
  return {
    prepare: (query: string) => countingStatement(real.prepare(query), counts),
    batch: <T>(statements: D1PreparedStatement[]) => {
      counts.d1 += 1;
      counts.d1Batches += 1;
      return real.batch<T>(statements.map((statement) => unwrapped.get(statement) ?? statement));
    },
    getBookmark: () => real.getBookmark(),
  } as D1DatabaseSession;
}

function countingD1(real: D1Database, counts: CallCounts): D1Database {
  return new Proxy(real, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property === "withSession") {
        return (constraintOrBookmark?: string) => {
          counts.sessions.push(constraintOrBookmark ?? "");
          return countingSession(target.withSession(constraintOrBookmark), counts);
        };
      }
      if (property === "prepare") {
        return (query: string) => countingStatement(target.prepare(query), counts);
      }
      if (property === "batch") {
        return (statements: D1PreparedStatement[]) => {
          counts.d1 += 1;
          counts.d1Batches += 1;
          return target.batch(statements.map((statement) => unwrapped.get(statement) ?? statement));
        };
      }
      if (property === "exec") {
        return (query: string) => {
          counts.d1 += 1;
          return target.exec(query);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function countingNamespace<T extends Rpc.DurableObjectBranded | undefined>(
  real: DurableObjectNamespace<T>,
  counts: CallCounts,
): DurableObjectNamespace<T> {
  return new Proxy(real, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property === "get" || property === "getByName") {
        return (...args: unknown[]) => {
          const options = args[1] as DurableObjectNamespaceGetDurableObjectOptions | undefined;
          counts.placements.push(options?.locationHint ?? null);
          const stub = (value as (...a: unknown[]) => object).apply(target, args);
          return new Proxy(stub, {
            get(stubTarget, method) {
              const member = Reflect.get(stubTarget, method);
              if (typeof member !== "function") return member;
              return (...callArgs: unknown[]) => {
                counts.objects += 1;
                // Not member.apply: on an RPC stub, `apply` would be taken for a remote method's name.
                return Reflect.apply(member as (...a: unknown[]) => unknown, stubTarget, callArgs);
              };
            },
          });
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function countingQueue<T>(real: Queue<T>, counts: CallCounts): Queue<T> {
  return new Proxy(real, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property === "send" || property === "sendBatch") {
        return (...args: unknown[]) => {
          counts.queueSends += 1;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * An app and env whose calls are counted. One env object for the whole test, so that what an isolate
 * caches per env (the parsed configuration) stays warm between requests, as in production.
 */
export function countingApp() {
  const counts: CallCounts = { d1: 0, d1Batches: 0, objects: 0, queueSends: 0, sessions: [], placements: [] };
  const real = env as Env;
  const counted: Env = {
    ...real,
    DB: countingD1(real.DB, counts),
    TICKETS: countingNamespace(real.TICKETS, counts),
    WALLETS: countingNamespace(real.WALLETS, counts),
    EVENTS: countingQueue(real.EVENTS, counts),
  };
  const app = buildApp();
  const ctx = { waitUntil: () => undefined, passThroughOnException: () => undefined, props: {} };
  return {
    /** Calls the app and answers the response with what this one request cost. */
    async call(
      method: string,
      path: string,
      options: {
        token?: string;
        body?: unknown;
        rawBody?: string;
        idempotencyKey?: string;
        headers?: Record<string, string>;
      } = {},
    ) {
      const headers = new Headers(options.headers);
      if (options.token) headers.set("authorization", `Bearer ${options.token}`);
      if (options.idempotencyKey) headers.set("idempotency-key", options.idempotencyKey);
      if (options.body !== undefined) headers.set("content-type", "application/json");
      const before = { ...counts, sessions: [...counts.sessions], placements: [...counts.placements] };
      const response = await app.fetch(
        new Request(`https://passes.test${path}`, {
          method,
          headers,
          body: options.body === undefined ? options.rawBody : JSON.stringify(options.body),
        }),
        counted,
        ctx as unknown as ExecutionContext,
      );
      const text = await response.text();
      const cost: CallCounts = {
        d1: counts.d1 - before.d1,
        d1Batches: counts.d1Batches - before.d1Batches,
        objects: counts.objects - before.objects,
        queueSends: counts.queueSends - before.queueSends,
        sessions: counts.sessions.slice(before.sessions.length),
        placements: counts.placements.slice(before.placements.length),
      };
      return {
        headers: response.headers,
        status: response.status,
        body: (text ? JSON.parse(text) : null) as Record<string, unknown>,
        cost,
      };
    },
  };
}
