import { ApiProblem, api } from "../lib/api";
import { busy, byId, h, say } from "../lib/dom";
import { describeError } from "../lib/format";
import { readJson, writeJson } from "./common";
import { noticeSignIn, signIn, signOut, storedToken, tokenClaims, usable } from "./session";

// Signing in: the deployment's OpenID Connect provider (implicit flow, answer in the URL fragment), a
// demo account in development, or a pasted token. A fragment answer counts only with the state this tab
// stored when it started the sign-in (login CSRF: see test/e2e/buyer-signin.test.ts).

/** The `state` and `nonce` of the provider sign-in this tab started (sessionStorage: this tab only). */
const SIGNIN_ATTEMPT_KEY = "passes.buyer.signin-attempt";
/** A provider sign-in not answered within this long is abandoned: its state is no longer accepted. */
const SIGNIN_ATTEMPT_MAX_MS = 10 * 60_000;

/**
 * The deployment's OpenID Connect provider, from `<meta name="passes-oidc-authorize-url">` and
 * `<meta name="passes-oidc-client-id">` in index.html (optional `passes-oidc-scope`, default `openid`).
 * Without them the page offers no provider button; demo sign-in (development) and a pasted token remain.
 */
interface IdentityProvider {
  authorizeUrl: string;
  clientId: string;
  scope: string;
}

function configuredProvider(): IdentityProvider | null {
  const meta = (name: string) =>
    document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content.trim() ?? "";
  const authorizeUrl = meta("passes-oidc-authorize-url");
  const clientId = meta("passes-oidc-client-id");
  if (!authorizeUrl || !clientId) return null;
  return { authorizeUrl, clientId, scope: meta("passes-oidc-scope") || "openid" };
}

/** What this tab asked the provider for: the answer must bring this `state` back, its token this `nonce`. */
interface SignInAttempt {
  state: string;
  nonce: string;
  started_at: number;
}

function randomValue(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}

/**
 * The provider's authorize URL for a sign-in (OpenID Connect implicit flow: the ID token comes back to
 * this page in the URL fragment). A fresh random `state` and `nonce` are stored in this tab first.
 */
function providerSignInUrl(provider: IdentityProvider): string {
  const attempt: SignInAttempt = { state: randomValue(), nonce: randomValue(), started_at: Date.now() };
  writeJson(SIGNIN_ATTEMPT_KEY, attempt);
  const url = new URL(provider.authorizeUrl);
  const params = {
    response_type: "id_token",
    response_mode: "fragment",
    client_id: provider.clientId,
    redirect_uri: location.origin + location.pathname,
    scope: provider.scope,
    state: attempt.state,
    nonce: attempt.nonce,
  };
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.toString();
}

const NOT_STARTED_HERE = "A sign-in this page did not start was ignored";

/**
 * The provider's answer in the URL fragment, taken and removed from the URL. It counts only with the
 * `state` this tab stored when it started the sign-in (used once, then forgotten), and a token that
 * carries a `nonce` must carry ours. Anything else is a sign-in this page did not ask for, such as a link
 * that would sign the visitor into someone else's account (login CSRF): it is ignored. A fragment that is
 * no sign-in answer at all (a section such as `#wallet`) is left alone.
 */
function signInFromFragment(): { token: string } | { refused: string } | null {
  const params = new URLSearchParams(location.hash.slice(1));
  const received = params.get("id_token") ?? params.get("access_token") ?? params.get("token");
  const error = params.get("error");
  if (!received && !error) return null;
  history.replaceState(null, "", location.pathname + location.search);
  const attempt = readJson<SignInAttempt>(SIGNIN_ATTEMPT_KEY);
  writeJson(SIGNIN_ATTEMPT_KEY, null);
  if (
    attempt === null ||
    Date.now() - attempt.started_at > SIGNIN_ATTEMPT_MAX_MS ||
    params.get("state") !== attempt.state
  ) {
    return { refused: NOT_STARTED_HERE };
  }
  if (error || !received) return { refused: "The identity provider did not sign you in" };
  const nonce = tokenClaims(received)?.nonce;
  if (nonce !== undefined && nonce !== attempt.nonce) return { refused: NOT_STARTED_HERE };
  if (!usable(received))
    return { refused: "The token from the identity provider is not valid or has expired" };
  return { token: received };
}

byId("demo-button").addEventListener("click", (event) => {
  void busy(event.currentTarget as HTMLButtonElement, async () => {
    say(byId("signin-status"), "Creating a demo account…");
    try {
      const { data } = await api<{ token: string }>("POST", "/dev/buyer-token", { body: {} });
      signIn(data.token);
    } catch (error) {
      const text =
        error instanceof ApiProblem && error.status === 404
          ? "Demo sign-in is only available when the API runs in development mode"
          : describeError(error);
      say(byId("signin-status"), text, "error");
    }
  });
});

byId<HTMLFormElement>("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = byId<HTMLTextAreaElement>("id-token");
  const pasted = field.value.trim();
  if (!usable(pasted)) {
    say(byId("signin-status"), "That is not a valid, unexpired token", "error");
    return;
  }
  field.value = "";
  signIn(pasted);
});

byId("sign-out").addEventListener("click", () => signOut());

const provider = configuredProvider();
if (provider) {
  const start = () => location.assign(providerSignInUrl(provider));
  byId("token-form").before(
    h(
      "button",
      { id: "provider-signin", type: "button", onclick: start },
      "Sign in with your identity provider",
    ),
  );
}

/**
 * Chooses the first screen: the provider's answer if this tab asked for it, else the sign-in kept from
 * before, else the sign-in screen. A refused answer leaves whoever was signed in (or nobody) as they were.
 */
export function startSession(): void {
  const fromProvider = signInFromFragment();
  const stored = storedToken();
  if (fromProvider && "token" in fromProvider) signIn(fromProvider.token);
  else if (usable(stored)) signIn(stored);
  else signOut();
  if (fromProvider && "refused" in fromProvider) noticeSignIn(fromProvider.refused);
}
