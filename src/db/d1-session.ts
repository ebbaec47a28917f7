import { AsyncLocalStorage } from "node:async_hooks";

// D1 read replication (the Sessions API): a request's reads may go to a replica near it, and a client that
// must read its own writes carries a bookmark from one request to the next. Every query of a request runs
// in one D1 session, chosen once by the request's middleware (src/http/d1-session.ts) and found here by
// the drizzle client through the request's async context. Nothing else changes for the code that queries:
// `getDb(env.DB)` stays as it was. Outside a request (the queue consumer, crons, Durable Objects) there is
// no session and queries go to the binding itself, the primary, as before.

/** The header that carries a D1 bookmark, both ways (the name the D1 documentation uses). */
export const D1_BOOKMARK_HEADER = "x-d1-bookmark";

/**
 * A bookmark as D1 hands them out (hex groups separated by dashes, e.g.
 * `00000000-00000011-00000000-000…`); anything else from a client is ignored, never passed to D1.
 */
const BOOKMARK_PATTERN = /^[0-9a-f]{1,64}(-[0-9a-f]{1,64}){0,7}$/i;

export function validBookmark(value: string | undefined): string | undefined {
  return value !== undefined && value.length <= 256 && BOOKMARK_PATTERN.test(value) ? value : undefined;
}

/**
 * A request's D1 session, opened at its first query: a request that queries nothing (a warm scan, a
 * deduction) opens none.
 */
export class RequestD1Session {
  private session: D1DatabaseSession | undefined;

  constructor(
    readonly binding: D1Database,
    private readonly start: string,
  ) {}

  /** The session, opened now if this is the request's first query. */
  open(): D1DatabaseSession {
    this.session ??= this.binding.withSession(this.start);
    return this.session;
  }

  /** The session's latest bookmark; null when it was never opened or ran nothing. */
  bookmark(): string | null {
    return this.session?.getBookmark() ?? null;
  }
}

const current = new AsyncLocalStorage<RequestD1Session>();

/** Runs `work` with every query on the session's binding going through that session. */
export function inD1Session<T>(session: RequestD1Session, work: () => Promise<T>): Promise<T> {
  return current.run(session, work);
}

/** Where a query on `binding` goes now: the current request's session, or the binding itself. */
function target(binding: D1Database): D1Database | D1DatabaseSession {
  const store = current.getStore();
  return store?.binding === binding ? store.open() : binding;
}

/**
 * A D1Database that sends each query to the current request's session when there is one. A statement is
 * prepared and batched in the same async context, so both reach the same session.
 */
export function sessionRouted(binding: D1Database): D1Database {
  return {
    prepare: (query: string) => target(binding).prepare(query),
    batch: <T>(statements: D1PreparedStatement[]) => target(binding).batch<T>(statements),
    // Schema changes (migrations) never run inside a request's session.
    exec: (query: string) => binding.exec(query),
    withSession: (constraintOrBookmark?: string) => binding.withSession(constraintOrBookmark),
    dump: () => binding.dump(),
  } as D1Database;
}
