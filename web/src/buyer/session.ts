import { ApiProblem, api } from "../lib/api";
import { byId, h, say, show } from "../lib/dom";
import { DEV_TOOLS } from "./common";

// Who is signed in, and the one way the buyer's features call the API with that sign-in. Features react
// to signing in and out through `onSignIn` / `onSignOut`, so this module depends on none of them.

const TOKEN_KEY = "passes.buyer.token";

let token: string | null = null;
const signInHandlers: (() => void)[] = [];
const signOutHandlers: (() => void)[] = [];

export const onSignIn = (handler: () => void) => signInHandlers.push(handler);
export const onSignOut = (handler: () => void) => signOutHandlers.push(handler);
export const signedIn = () => token !== null;
export const storedToken = () => localStorage.getItem(TOKEN_KEY);

export function tokenClaims(jwt: string): { sub?: string; exp?: number; nonce?: unknown } | null {
  const payload = jwt.split(".")[1];
  if (!payload) return null;
  try {
    return JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    return null;
  }
}

export function usable(jwt: string | null): jwt is string {
  const claims = jwt ? tokenClaims(jwt) : null;
  return Boolean(claims?.sub) && (claims?.exp === undefined || claims.exp * 1000 > Date.now());
}

/** A short notice about sign-in, at the top of whichever screen is showing (sign-in or the app). */
const signInNotice = h("p", { id: "signin-notice", class: "status", role: "status", hidden: true });

export function noticeSignIn(text: string): void {
  const screen = token ? byId("app").querySelector("main") : byId("signin");
  screen?.prepend(signInNotice);
  say(signInNotice, text, "error");
  show(signInNotice, text !== "");
}

export function signIn(jwt: string): void {
  noticeSignIn("");
  token = jwt;
  localStorage.setItem(TOKEN_KEY, jwt);
  byId("who").textContent = `Signed in as ${tokenClaims(jwt)?.sub ?? "?"}`;
  show(byId("signin"), false);
  show(byId("app"), true);
  for (const handler of signInHandlers) handler();
}

export function signOut(message = ""): void {
  noticeSignIn("");
  token = null;
  localStorage.removeItem(TOKEN_KEY);
  for (const handler of signOutHandlers) handler();
  byId("who").textContent = "";
  show(byId("app"), false);
  show(byId("signin"), true);
  show(byId("demo-signin"), DEV_TOOLS);
  say(byId("signin-status"), message, message ? "error" : "info");
}

/** Every buyer call goes through here, so an expired sign-in anywhere returns to the sign-in screen. */
export async function buyerApi<T>(method: string, path: string, options: Parameters<typeof api>[2] = {}) {
  try {
    return await api<T>(method, path, { ...options, token });
  } catch (error) {
    if (error instanceof ApiProblem && error.code === "unauthenticated") {
      signOut("Your sign-in expired: sign in again");
    }
    throw error;
  }
}
