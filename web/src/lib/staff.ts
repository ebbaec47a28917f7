import { ApiProblem, api } from "./api";
import { deviceProof, EnrollmentNeeded, enrollDevice, forgetDeviceKey, hasDeviceKey } from "./device-key";
import { busy, byId, say, show } from "./dom";
import { dateTime, describeError } from "./format";

// Staff sign-in and the validator session, shared by /gate and /pos. The operator token and the open
// session live in sessionStorage: they survive a reload of the tab but not closing it, which suits a
// shared device.

export interface ValidatorSession {
  session_id: string;
  device_id: string;
  kind: "gate" | "pos";
  location_id: string | null;
  event_id: string | null;
  expires_at: string;
}

interface Stored {
  token: string;
  tokenExpiresAt: number;
  session: ValidatorSession | null;
}

export interface StaffOptions {
  kind: "gate" | "pos";
  /** Called when a session is open and the work area should start; again after a reload. */
  onReady(session: ValidatorSession): void;
  /** Called when the work area must stop (signed out, session closed). */
  onStop(): void;
}

export interface Staff {
  token(): string;
  session(): ValidatorSession;
  /** Call with any error from a staff request: signs out on 401, drops the session on session_invalid. */
  handleError(error: unknown): void;
}

export function setupStaff(options: StaffOptions): Staff {
  const storageKey = `passes.staff.${options.kind}`;
  const loginForm = byId<HTMLFormElement>("login-form");
  const sessionForm = byId<HTMLFormElement>("session-form");
  const sessionInfo = byId("session-info");
  const work = byId("work");
  const loginStatus = byId("login-status");
  const sessionStatus = byId("session-status");

  let state: Stored | null = load();

  function load(): Stored | null {
    try {
      const stored = JSON.parse(sessionStorage.getItem(storageKey) ?? "null") as Stored | null;
      return stored && stored.tokenExpiresAt > Date.now() ? stored : null;
    } catch {
      return null;
    }
  }

  function save(next: Stored | null): void {
    state = next;
    if (next) sessionStorage.setItem(storageKey, JSON.stringify(next));
    else sessionStorage.removeItem(storageKey);
    layout();
  }

  function layout(): void {
    const session =
      state?.session && Date.parse(state.session.expires_at) > Date.now() ? state.session : null;
    show(loginForm, !state);
    show(sessionForm, Boolean(state) && !session);
    show(sessionInfo, Boolean(session));
    show(work, Boolean(session));
    if (session) {
      const where =
        session.kind === "gate"
          ? `location ${session.location_id ?? "—"}`
          : `event ${session.event_id ?? "—"}`;
      byId("session-summary").textContent =
        `Device ${session.device_id}, ${where}, open until ${dateTime(session.expires_at)}`;
      options.onReady(session);
    } else {
      options.onStop();
    }
  }

  loginForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(loginForm);
    void busy(byId<HTMLButtonElement>("login-button"), async () => {
      say(loginStatus, "Signing in…");
      try {
        const { data: login } = await api<{ operator_token: string; expires_in: number }>(
          "POST",
          "/operators/login",
          {
            body: {
              username: String(data.get("username") ?? ""),
              password: String(data.get("password") ?? ""),
            },
          },
        );
        say(loginStatus, "");
        byId<HTMLInputElement>("password").value = "";
        save({
          token: login.operator_token,
          tokenExpiresAt: Date.now() + login.expires_in * 1000,
          session: null,
        });
      } catch (error) {
        say(loginStatus, describeError(error), "error");
      }
    });
  });

  sessionForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(sessionForm);
    const deviceId = String(data.get("device_id") ?? "").trim();
    const enrollmentCode = String(data.get("enrollment_code") ?? "").trim();
    void busy(byId<HTMLButtonElement>("session-button"), async () => {
      say(sessionStatus, "Opening session…");
      try {
        const session = await openSessionAsDevice(deviceId, enrollmentCode);
        say(sessionStatus, "");
        byId<HTMLInputElement>("enrollment-code").value = "";
        show(byId("enrollment"), false);
        if (state) save({ ...state, session });
      } catch (error) {
        if (error instanceof EnrollmentNeeded) {
          show(byId("enrollment"), true);
          say(sessionStatus, "Enter this device's enrollment code to continue", "error");
          return;
        }
        say(sessionStatus, describeError(error), "error");
        handleError(error);
      }
    });
  });

  /**
   * Enrolls this browser as the device when it holds no key (or a code was typed), then opens a session
   * with a fresh device proof. A key the server no longer accepts (revoked, or replaced elsewhere) is
   * forgotten, and the device enrolls again: by itself under `npm run dev`, else with a typed code.
   */
  async function openSessionAsDevice(deviceId: string, enrollmentCode: string): Promise<ValidatorSession> {
    if (enrollmentCode || !(await hasDeviceKey(deviceId)))
      await enrollDevice(deviceId, enrollmentCode || undefined);
    const open = async () =>
      (
        await api<ValidatorSession>("POST", "/validators/sessions", {
          token: state?.token,
          body: { device_id: deviceId, device_proof: await deviceProof(deviceId) },
        })
      ).data;
    try {
      return await open();
    } catch (error) {
      if (!(error instanceof ApiProblem) || error.code !== "device_not_authorized" || enrollmentCode)
        throw error;
      await forgetDeviceKey(deviceId);
      await enrollDevice(deviceId);
      return open();
    }
  }

  byId("close-session").addEventListener("click", () => {
    const session = state?.session;
    if (!state || !session) return;
    const token = state.token;
    save({ ...state, session: null });
    // Closing is best effort: the session expires on its own if this never arrives.
    api("DELETE", `/validators/sessions/${encodeURIComponent(session.session_id)}`, { token }).catch(
      () => {},
    );
  });

  for (const button of document.querySelectorAll<HTMLButtonElement>("[data-sign-out]")) {
    button.addEventListener("click", () => save(null));
  }

  function handleError(error: unknown): void {
    if (!(error instanceof ApiProblem) || !state) return;
    if (error.code === "unauthenticated") {
      save(null);
      say(loginStatus, "Your sign-in expired: sign in again", "error");
    } else if (error.code === "session_invalid") {
      save({ ...state, session: null });
      say(sessionStatus, "The session was closed or expired: open a new one", "error");
    }
  }

  layout();
  return {
    token: () => state?.token ?? "",
    session: () => {
      if (!state?.session) throw new Error("No open session");
      return state.session;
    },
    handleError,
  };
}
