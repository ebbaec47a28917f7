import { createMiddleware } from "hono/factory";
import { D1_BOOKMARK_HEADER, inD1Session, RequestD1Session, validBookmark } from "../db/d1-session";
import type { AppEnv } from "./context";

/** Methods that only read: their first query may go to any replica. */
const READS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Every request runs its D1 queries in one session (sequentially consistent: each read sees the
 * request's own earlier writes). A request that brings a bookmark (`x-d1-bookmark`, from an earlier
 * answer) starts at least as fresh as that bookmark, so a client reads its own writes; without one, a
 * read starts on whatever copy is nearest (`first-unconstrained`) and a write on the primary
 * (`first-primary`). The session is opened by the request's first query, so one that queries nothing
 * (a warm scan) pays nothing for it. The answer carries the session's bookmark for the client's next
 * request.
 */
export const d1Session = createMiddleware<AppEnv>(async (c, next) => {
  const bookmark = validBookmark(c.req.header(D1_BOOKMARK_HEADER));
  const session = new RequestD1Session(
    c.env.DB,
    bookmark ?? (READS.has(c.req.method) ? "first-unconstrained" : "first-primary"),
  );
  await inD1Session(session, next);
  const latest = session.bookmark();
  if (!latest) return;
  try {
    c.res.headers.set(D1_BOOKMARK_HEADER, latest);
  } catch {
    // An answer passed through from elsewhere may have immutable headers.
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set(D1_BOOKMARK_HEADER, latest);
  }
});
