import type { OperatorClaims } from "../auth/operator-token";
import type { Db } from "../db/client";
import type { Config, Env } from "../env";
import type { ValidatorSession } from "../types/domain";

// The till's side of a POS request: who is selling, where, under which open session. What a till does to
// a wallet is in ./wallet-pos.ts, its shift's takings in ./till-sales.ts.

export interface PosContext {
  env: Env;
  db: Db;
  config: Config;
  operator: OperatorClaims;
  now: Date;
  /** The origin the request came to: links fall back to it when PUBLIC_BASE_URL is unset. */
  origin: string;
}

/** The open POS session a till works under, with the event its deductions belong to. */
export interface PosSession {
  sessionId: string;
  deviceId: string;
  eventId: string;
  openedAt: string;
}

/** Why an open POS session may not sell (the routes answer 403 `session_invalid` with the detail). */
export interface PosSessionRefusal {
  ok: false;
  code: "session_invalid";
  detail: string;
}

/**
 * The till an open POS session (the caller's, on an active device: see requireOpenSession) sells at, or
 * why it may not sell there now.
 */
export function posSessionOf(
  session: ValidatorSession,
  operator: OperatorClaims,
): { ok: true; session: PosSession } | PosSessionRefusal {
  // Opening a POS session requires an event (the device's), so this only guards a hand-edited row.
  if (session.event_id === null) {
    return { ok: false, code: "session_invalid", detail: "The POS session has no event" };
  }
  // The session was opened for one of the operator's events; the operator record (≤ 5 s old) may have
  // taken that event away since, and then the till may not sell there any more.
  if (!operator.roles.includes("admin") && !operator.eventIds.includes(session.event_id)) {
    return {
      ok: false,
      code: "session_invalid",
      detail: "The session's event is no longer one of this operator's",
    };
  }
  return {
    ok: true,
    session: {
      sessionId: session.session_id,
      deviceId: session.device_id,
      eventId: session.event_id,
      openedAt: session.opened_at,
    },
  };
}
