import { ApiProblem, api, type RequestOptions } from "../lib/api";
import { busy, byId, say, show } from "../lib/dom";
import { describeError } from "../lib/format";

// Who is signed in, and the one way the sections call the API with that sign-in. Like /reports, the
// operator token lives in sessionStorage: it survives a reload of the tab, not closing it. Sections react
// to signing in through `onSignIn`, so this module depends on none of them.

const STORAGE_KEY = "passes.staff.admin";

interface StoredLogin {
  token: string;
  username: string;
  operatorId: string;
  expiresAt: number;
}

let login: StoredLogin | null = null;
const signInHandlers: (() => void)[] = [];
const signOutHandlers: (() => void)[] = [];

export const onSignIn = (handler: () => void) => signInHandlers.push(handler);
/** For what must not outlive a sign-in on a shared screen, such as an enrollment code on display. */
export const onSignOut = (handler: () => void) => signOutHandlers.push(handler);
/** The signed-in admin's own operator id: the API refuses to let an admin revoke themselves. */
export const ownOperatorId = () => login?.operatorId ?? "";

function claimsOf(token: string): { operator_id?: unknown; roles?: unknown } {
  try {
    const payload = token.split(".")[1] ?? "";
    return JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    return {};
  }
}

function readLogin(): StoredLogin | null {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as StoredLogin | null;
    return stored && stored.expiresAt > Date.now() ? stored : null;
  } catch {
    return null;
  }
}

function setLogin(next: StoredLogin | null): void {
  login = next;
  if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(STORAGE_KEY);
  show(byId("login-form"), !next);
  show(byId("signin"), !next);
  show(byId("work"), Boolean(next));
  show(byId("sign-out"), Boolean(next));
  byId("who").textContent = next ? next.username : "";
  if (next) for (const handler of signInHandlers) handler();
}

export function signOut(message = ""): void {
  setLogin(null);
  for (const handler of signOutHandlers) handler();
  say(byId("login-status"), message, message ? "error" : "info");
}

/** Every admin call goes through here, so an expired or revoked sign-in returns to the sign-in form. */
export async function adminApi<T>(method: string, path: string, options: RequestOptions = {}) {
  try {
    return await api<T>(method, path, { ...options, token: login?.token });
  } catch (error) {
    if (error instanceof ApiProblem && error.code === "unauthenticated") {
      signOut("Your sign-in expired or was revoked: sign in again");
    }
    throw error;
  }
}

export function setupSession(): void {
  const form = byId<HTMLFormElement>("login-form");
  const status = byId("login-status");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const username = String(data.get("username") ?? "").trim();
    void busy(byId<HTMLButtonElement>("login-button"), async () => {
      say(status, "Signing in…");
      try {
        const { data: answer } = await api<{ operator_token: string; expires_in: number }>(
          "POST",
          "/operators/login",
          { body: { username, password: String(data.get("password") ?? "") } },
        );
        byId<HTMLInputElement>("password").value = "";
        const claims = claimsOf(answer.operator_token);
        // The API would refuse every request anyway; saying so now is kinder than six 403s.
        if (!Array.isArray(claims.roles) || !claims.roles.includes("admin")) {
          say(status, `${username} is not an admin: this page needs the admin role`, "error");
          return;
        }
        say(status, "");
        setLogin({
          token: answer.operator_token,
          username,
          operatorId: typeof claims.operator_id === "string" ? claims.operator_id : "",
          expiresAt: Date.now() + answer.expires_in * 1000,
        });
      } catch (error) {
        say(status, describeError(error), "error");
      }
    });
  });
  byId("sign-out").addEventListener("click", () => signOut());
  setLogin(readLogin());
}
