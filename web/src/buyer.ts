import { ApiProblem, api, NetworkError, newIdempotencyKey } from "./lib/api";
import { busy, byId, h, render, say, show } from "./lib/dom";
import { dateTime, describeError, money, parseAmountCents } from "./lib/format";
import { drawQr } from "./lib/qr";

// `/`: the buyer app. Sign in, buy passes, pay, and show a rotating QR per ticket; keep a credit wallet
// and show its QR at a till. Everything goes through the public API with the buyer's bearer token.

interface ProductFunction {
  function: string;
  uses: number;
}

interface Product {
  id: string;
  name: string;
  description: string;
  price_cents: number;
  currency: string;
  functions: ProductFunction[];
  available: number;
}

interface Order {
  order_id: string;
  status: "PENDING_PAYMENT" | "PAID" | "PAYMENT_FAILED" | "EXPIRED";
  items: { product_id: string; quantity: number }[];
  total_cents: number;
  amount_due_cents: number;
  currency: string;
  expires_at: string;
}

interface Entitlement {
  function: string;
  total_uses: number;
  remaining_uses: number;
}

interface Ticket {
  code: string;
  product_name: string;
  status: "ACTIVE" | "USED_UP";
  issued_at: string;
  entitlements: Entitlement[];
}

interface QrToken {
  token: string;
  expires_in: number;
}

interface Wallet {
  balance_cents: number;
  currency: string;
  updated_at: string | null;
  /** Set aside for orders awaiting payment, where the API reports holds. */
  held_cents?: number;
}

interface Transaction {
  id: string;
  type: string;
  direction?: "credit" | "debit";
  amount_cents: number;
  currency: string;
  created_at: string;
}

/** One checkout: its Idempotency-Key is made once and reused by every retry until the API answers. */
interface Checkout {
  key: string;
  items: { product_id: string; quantity: number }[];
  label: string;
  order?: Order;
}

/** One top-up attempt, kept the same way. */
interface TopupAttempt {
  key: string;
  amount_cents: number;
  topup?: { topup_id: string; status: string; amount_cents: number };
}

const TOKEN_KEY = "passes.buyer.token";
/** The `state` and `nonce` of the provider sign-in this tab started (sessionStorage: this tab only). */
const SIGNIN_ATTEMPT_KEY = "passes.buyer.signin-attempt";
/** A provider sign-in not answered within this long is abandoned: its state is no longer accepted. */
const SIGNIN_ATTEMPT_MAX_MS = 10 * 60_000;
const CHECKOUT_KEY = "passes.buyer.checkout";
const TOPUP_KEY = "passes.buyer.topup";
const MAX_QUANTITY = 20;
/** While a QR is on screen the tickets are re-read this often, to notice a scan and show a fresh code. */
const QR_POLL_MS = 4_000;
/** Attempts and spacing when waiting for a simulated payment to show up in an order or the balance. */
const SETTLE_POLLS = 20;
const SETTLE_POLL_MS = 500;

/**
 * Demo sign-in and simulated payments call endpoints that exist only when the API runs with
 * ENVIRONMENT=development, which is what `npm run dev` serves on localhost; `?dev` offers them elsewhere.
 */
const DEV_TOOLS =
  ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname) ||
  new URLSearchParams(location.search).has("dev");

const products = new Map<string, Product>();
let token: string | null = null;
let checkout: Checkout | null = readJson<Checkout>(CHECKOUT_KEY);
let topupAttempt: TopupAttempt | null = readJson<TopupAttempt>(TOPUP_KEY);
let orderTimer: ReturnType<typeof setInterval> | undefined;

function readJson<T>(key: string): T | null {
  try {
    return JSON.parse(sessionStorage.getItem(key) ?? "null") as T | null;
  } catch {
    return null;
  }
}

function writeJson(key: string, value: unknown): void {
  if (value === null) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, JSON.stringify(value));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retrying with the same key is safe and may succeed: no answer, a server fault, or still running. */
function retryable(error: unknown): boolean {
  return (
    error instanceof NetworkError ||
    (error instanceof ApiProblem && (error.status >= 500 || error.code === "idempotency_in_progress"))
  );
}

// ——— Sign-in ———

function tokenClaims(jwt: string): { sub?: string; exp?: number; nonce?: unknown } | null {
  const payload = jwt.split(".")[1];
  if (!payload) return null;
  try {
    return JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    return null;
  }
}

function usable(jwt: string | null): jwt is string {
  const claims = jwt ? tokenClaims(jwt) : null;
  return Boolean(claims?.sub) && (claims?.exp === undefined || claims.exp * 1000 > Date.now());
}

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
 * that would sign the visitor into someone else's account (login CSRF): it is ignored.
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

/** A short notice about sign-in, at the top of whichever screen is showing (sign-in or the app). */
const signInNotice = h("p", { id: "signin-notice", class: "status", role: "status", hidden: true });

function noticeSignIn(text: string): void {
  const screen = token ? byId("app").querySelector("main") : byId("signin");
  screen?.prepend(signInNotice);
  say(signInNotice, text, "error");
  show(signInNotice, text !== "");
}

function signIn(jwt: string): void {
  noticeSignIn("");
  token = jwt;
  localStorage.setItem(TOKEN_KEY, jwt);
  byId("who").textContent = `Signed in as ${tokenClaims(jwt)?.sub ?? "?"}`;
  show(byId("signin"), false);
  show(byId("app"), true);
  void loadCatalog();
  renderCheckout();
  renderTopupAttempt();
}

function signOut(message = ""): void {
  noticeSignIn("");
  token = null;
  localStorage.removeItem(TOKEN_KEY);
  checkout = null;
  topupAttempt = null;
  writeJson(CHECKOUT_KEY, null);
  writeJson(TOPUP_KEY, null);
  stopQr();
  if (dialog.open) dialog.close();
  byId("who").textContent = "";
  show(byId("app"), false);
  show(byId("signin"), true);
  show(byId("demo-signin"), DEV_TOOLS);
  say(byId("signin-status"), message, message ? "error" : "info");
}

/** Every buyer call goes through here, so an expired sign-in anywhere returns to the sign-in screen. */
async function buyerApi<T>(method: string, path: string, options: Parameters<typeof api>[2] = {}) {
  try {
    return await api<T>(method, path, { ...options, token });
  } catch (error) {
    if (error instanceof ApiProblem && error.code === "unauthenticated") {
      signOut("Your sign-in expired: sign in again");
    }
    throw error;
  }
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

// ——— Tabs ———

type Tab = "catalog" | "tickets" | "wallet";

function openTab(tab: Tab): void {
  for (const button of document.querySelectorAll<HTMLButtonElement>("nav.tabs button")) {
    if (button.dataset.tab === tab) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const name of ["catalog", "tickets", "wallet"] as const) show(byId(`tab-${name}`), name === tab);
  if (tab === "catalog") void loadCatalog();
  if (tab === "tickets") void loadTickets();
  if (tab === "wallet") void loadWallet();
}

for (const button of document.querySelectorAll<HTMLButtonElement>("nav.tabs button")) {
  button.addEventListener("click", () => openTab(button.dataset.tab as Tab));
}

// ——— Catalog and checkout ———

async function loadCatalog(): Promise<void> {
  const status = byId("catalog-status");
  try {
    const { data } = await api<{ products: Product[] }>("GET", "/catalog");
    for (const product of data.products) products.set(product.id, product);
    render(byId("products"), ...data.products.map(productCard));
    say(status, data.products.length === 0 ? "Nothing is for sale right now." : "");
  } catch (error) {
    say(status, `Could not load the catalog: ${describeError(error)}`, "error");
  }
}

function functionChips(functions: { function: string; text: string; empty?: boolean }[]): HTMLUListElement {
  return h(
    "ul",
    { class: "chips" },
    ...functions.map((item) =>
      h("li", { class: item.empty ? "none" : undefined }, `${item.function} ${item.text}`),
    ),
  );
}

function productCard(product: Product): HTMLLIElement {
  const quantityId = `quantity-${product.id}`;
  const quantity = h("input", {
    id: quantityId,
    type: "number",
    min: 1,
    max: Math.max(1, Math.min(MAX_QUANTITY, product.available)),
    value: 1,
    inputmode: "numeric",
  });
  const soldOut = product.available <= 0;
  return h(
    "li",
    { class: "card" },
    h("h3", {}, product.name),
    product.description ? h("p", {}, product.description) : null,
    functionChips(product.functions.map((f) => ({ function: f.function, text: `×${f.uses}` }))),
    h("p", { class: "money" }, money(product.price_cents, product.currency)),
    h("p", { class: "muted" }, soldOut ? "Sold out" : `${product.available} available`),
    h(
      "div",
      { class: "row" },
      h("label", { for: quantityId }, "Quantity"),
      quantity,
      h(
        "button",
        {
          type: "button",
          disabled: soldOut,
          "aria-label": `Buy ${product.name}`,
          onclick: () => startCheckout(product, Number(quantity.value)),
        },
        "Buy",
      ),
    ),
  );
}

function startCheckout(product: Product, quantity: number): void {
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > MAX_QUANTITY) {
    say(byId("catalog-status"), `Choose a quantity from 1 to ${MAX_QUANTITY}`, "error");
    return;
  }
  checkout = {
    key: newIdempotencyKey(),
    items: [{ product_id: product.id, quantity }],
    label: `${quantity} × ${product.name}`,
  };
  writeJson(CHECKOUT_KEY, checkout);
  void placeOrder();
}

async function placeOrder(): Promise<void> {
  const attempt = checkout;
  if (!attempt) return;
  const status = byId("checkout-status");
  renderCheckout();
  show(byId("order-retry"), false);
  say(status, "Reserving your passes…");
  try {
    const { data } = await buyerApi<Order>("POST", "/orders", {
      idempotencyKey: attempt.key,
      body: { items: attempt.items },
    });
    if (checkout !== attempt) return;
    attempt.order = data;
    writeJson(CHECKOUT_KEY, attempt);
    say(status, "");
    renderCheckout();
    void loadCatalog();
  } catch (error) {
    if (checkout !== attempt) return;
    if (retryable(error)) {
      show(byId("order-retry"), true);
      say(status, `${describeError(error)}. Retrying is safe: it cannot order twice.`, "error");
      return;
    }
    const detail =
      error instanceof ApiProblem && error.code === "sold_out"
        ? `Sold out: ${String(error.problem.available ?? 0)} left`
        : describeError(error);
    say(status, detail, "error");
    checkout = null;
    writeJson(CHECKOUT_KEY, null);
  }
}

function renderCheckout(): void {
  clearInterval(orderTimer);
  const card = byId("checkout");
  const order = checkout?.order;
  show(byId("pay-button"), false);
  show(byId("pay-note"), false);
  if (!checkout) {
    show(card, Boolean(byId("checkout-status").textContent));
    render(byId("order-summary"));
    return;
  }
  show(card, true);
  if (!order) {
    render(byId("order-summary"), h("p", {}, checkout.label));
    show(byId("order-retry"), !byId("checkout-status").textContent?.startsWith("Reserving"));
    return;
  }
  show(byId("order-retry"), false);
  const countdown = h("span", {});
  render(
    byId("order-summary"),
    h("p", {}, checkout.label),
    h("p", { class: "money" }, money(order.amount_due_cents, order.currency)),
    h(
      "p",
      { class: "muted" },
      `Order ${order.order_id} · ${order.status.replaceAll("_", " ").toLowerCase()}`,
    ),
    order.status === "PENDING_PAYMENT" ? h("p", {}, "Reserved for you: ", countdown) : null,
  );
  if (order.status === "PENDING_PAYMENT") {
    show(byId("pay-button"), DEV_TOOLS);
    show(byId("pay-note"), !DEV_TOOLS);
    const tick = () => {
      const seconds = Math.max(0, Math.round((Date.parse(order.expires_at) - Date.now()) / 1000));
      countdown.textContent =
        seconds > 0 ? `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")} left` : "expired";
    };
    tick();
    orderTimer = setInterval(tick, 1_000);
  }
}

byId("order-retry").addEventListener("click", () => void placeOrder());

byId("checkout-cancel").addEventListener("click", () => {
  checkout = null;
  writeJson(CHECKOUT_KEY, null);
  say(byId("checkout-status"), "");
  renderCheckout();
});

/** Waits until `read` returns a value accepted by `done`, re-reading a few times. */
async function settle<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let poll = 1; poll < SETTLE_POLLS && !done(value); poll += 1) {
    await sleep(SETTLE_POLL_MS);
    value = await read();
  }
  return value;
}

byId("pay-button").addEventListener("click", (event) => {
  const order = checkout?.order;
  if (!order) return;
  const status = byId("checkout-status");
  void busy(event.currentTarget as HTMLButtonElement, async () => {
    say(status, "Paying…");
    try {
      await buyerApi("POST", "/dev/simulate-payment", { body: { order_id: order.order_id } });
      const paid = await settle(
        async () => (await buyerApi<Order>("GET", `/orders/${encodeURIComponent(order.order_id)}`)).data,
        (current) => current.status !== "PENDING_PAYMENT",
      );
      if (paid.status !== "PAID") {
        say(status, `Payment did not go through (${paid.status.toLowerCase()})`, "error");
        return;
      }
      checkout = null;
      writeJson(CHECKOUT_KEY, null);
      renderCheckout();
      say(status, "");
      openTab("tickets");
      say(byId("tickets-status"), "Paid: your tickets are ready.", "ok");
    } catch (error) {
      say(status, describeError(error), "error");
    }
  });
});

// ——— Tickets ———

function formatCode(code: string): string {
  return code.match(/.{1,4}/g)?.join("-") ?? code;
}

function entitlementChips(entitlements: Entitlement[]): HTMLUListElement {
  return functionChips(
    entitlements.map((entitlement) => ({
      function: entitlement.function,
      text: `${entitlement.remaining_uses}/${entitlement.total_uses}`,
      empty: entitlement.remaining_uses === 0,
    })),
  );
}

function ticketCard(ticket: Ticket): HTMLLIElement {
  const active = ticket.status === "ACTIVE";
  return h(
    "li",
    { class: "card", "data-ticket": ticket.code },
    h(
      "div",
      { class: "head" },
      h("h3", {}, ticket.product_name),
      h("span", { class: active ? "badge" : "badge off" }, active ? "Active" : "Used up"),
    ),
    h("p", { class: "code" }, formatCode(ticket.code)),
    h("p", { class: "muted" }, "Uses left"),
    entitlementChips(ticket.entitlements),
    h("p", { class: "muted" }, `Issued ${dateTime(ticket.issued_at)}`),
    h(
      "button",
      {
        type: "button",
        disabled: !active,
        "aria-label": `Show QR code for ticket ${ticket.code}`,
        onclick: () => openTicketQr(ticket),
      },
      "Show QR code",
    ),
  );
}

async function fetchTickets(): Promise<Ticket[]> {
  return (await buyerApi<{ tickets: Ticket[] }>("GET", "/my/tickets")).data.tickets;
}

/** Sequence numbers of list reads: a slower, older answer must not overwrite a newer one. */
const latest = { tickets: 0, wallet: 0 };

async function loadTickets(): Promise<void> {
  const request = ++latest.tickets;
  const status = byId("tickets-status");
  try {
    const tickets = await fetchTickets();
    if (request !== latest.tickets) return;
    render(byId("tickets"), ...tickets.map(ticketCard));
    if (tickets.length === 0) say(status, "No tickets yet: buy a pass first.");
  } catch (error) {
    say(status, `Could not load your tickets: ${describeError(error)}`, "error");
  }
}

byId("tickets-refresh").addEventListener("click", () => {
  say(byId("tickets-status"), "");
  void loadTickets();
});

// ——— Full-screen rotating QR ———

interface QrSource {
  title: string;
  subtitle: string;
  /** The subtitle is a code to read out or type (set in monospace). */
  subtitleIsCode?: boolean;
  label: string;
  fetchToken(): Promise<QrToken>;
  /** The entitlements now, to notice a scan while the code is shown. */
  readUses?(): Promise<Entitlement[] | undefined>;
}

interface QrState {
  source: QrSource;
  issuedAt: number;
  refreshAt: number;
  expiresAt: number;
  uses: string;
  timers: ReturnType<typeof setTimeout>[];
  refreshTimer?: ReturnType<typeof setTimeout>;
}

const dialog = byId<HTMLDialogElement>("qr-dialog");
const qrCanvas = byId<HTMLCanvasElement>("qr-canvas");
let qr: QrState | null = null;

/** Fetch the next code this long before the current one lapses: covers a slow network, stays short-lived. */
function refreshMarginSeconds(expiresIn: number): number {
  return Math.min(10, Math.max(3, Math.floor(expiresIn / 5)));
}

function openQr(source: QrSource): void {
  stopQr();
  qr = { source, issuedAt: Date.now(), refreshAt: Date.now(), expiresAt: Date.now(), uses: "", timers: [] };
  byId("qr-title").textContent = source.title;
  byId("qr-code").textContent = source.subtitle;
  byId("qr-code").className = source.subtitleIsCode ? "code" : "";
  qrCanvas.setAttribute("aria-label", source.label);
  qrCanvas.dataset.state = "loading";
  render(byId("qr-uses"));
  say(byId("qr-status"), "");
  byId("qr-countdown").textContent = "Getting a code…";
  if (!dialog.open) dialog.showModal();
  const state = qr;
  state.timers.push(setInterval(() => tickQr(state), 250));
  if (source.readUses) state.timers.push(setInterval(() => void pollUses(state), QR_POLL_MS));
  void refreshQr(state);
  if (source.readUses) void pollUses(state);
}

async function refreshQr(state: QrState): Promise<void> {
  clearTimeout(state.refreshTimer);
  try {
    const { token: qrToken, expires_in } = await state.source.fetchToken();
    if (qr !== state) return;
    drawQr(qrCanvas, qrToken);
    qrCanvas.dataset.state = "live";
    const now = Date.now();
    state.issuedAt = now;
    state.expiresAt = now + expires_in * 1000;
    state.refreshAt = state.expiresAt - refreshMarginSeconds(expires_in) * 1000;
    state.refreshTimer = setTimeout(() => void refreshQr(state), state.refreshAt - now);
    const status = byId("qr-status");
    if (status.dataset.kind === "error") say(status, "");
    tickQr(state);
  } catch (error) {
    if (qr !== state) return;
    say(byId("qr-status"), `${describeError(error)}: trying again…`, "error");
    state.refreshTimer = setTimeout(() => void refreshQr(state), 3_000);
  }
}

function tickQr(state: QrState): void {
  if (qr !== state || qrCanvas.dataset.state === "loading") return;
  const now = Date.now();
  const progress = byId<HTMLProgressElement>("qr-progress");
  if (now >= state.expiresAt) {
    // Never leave an expired code up: a gate would refuse it and the buyer would not know why.
    qrCanvas.dataset.state = "expired";
    byId("qr-countdown").textContent = "Code expired: getting a new one…";
    progress.value = 0;
    return;
  }
  const seconds = Math.max(0, Math.ceil((state.refreshAt - now) / 1000));
  byId("qr-countdown").textContent = `New code in ${seconds} s`;
  progress.value = Math.max(0, (state.refreshAt - now) / Math.max(1, state.refreshAt - state.issuedAt));
}

async function pollUses(state: QrState): Promise<void> {
  try {
    const uses = await state.source.readUses?.();
    if (qr !== state || !uses) return;
    const signature = JSON.stringify(uses);
    if (state.uses && state.uses !== signature) {
      // A scan spent this code: say so and show a fresh one for the next gate.
      const before = JSON.parse(state.uses) as Entitlement[];
      const spent = uses.find((now) =>
        before.some((old) => old.function === now.function && old.remaining_uses > now.remaining_uses),
      );
      if (spent) say(byId("qr-status"), `Scanned: ${spent.remaining_uses} ${spent.function} left`, "ok");
      void refreshQr(state);
    }
    state.uses = signature;
    render(byId("qr-uses"), ...entitlementChips(uses).children);
  } catch {
    // The code on screen stays valid; the next poll tries again.
  }
}

/** Stops the current code's timers; returns what was shown, if anything. */
function stopQr(): QrSource | undefined {
  if (!qr) return undefined;
  for (const timer of qr.timers) clearInterval(timer);
  clearTimeout(qr.refreshTimer);
  const { source } = qr;
  qr = null;
  return source;
}

byId("qr-close").addEventListener("click", () => dialog.close());
// Also reached with Escape. Afterwards the list behind shows what the scans spent.
dialog.addEventListener("close", () => {
  const source = stopQr();
  if (source?.readUses) void loadTickets();
  else if (source && token) void loadWallet();
});

function openTicketQr(ticket: Ticket): void {
  openQr({
    title: ticket.product_name,
    subtitle: formatCode(ticket.code),
    subtitleIsCode: true,
    label: `QR code for ticket ${ticket.code}`,
    fetchToken: async () =>
      (await buyerApi<QrToken>("POST", `/tickets/${encodeURIComponent(ticket.code)}/qr-token`)).data,
    readUses: async () => (await fetchTickets()).find((t) => t.code === ticket.code)?.entitlements,
  });
}

// ——— Wallet ———

const walletControls = () => [
  byId<HTMLButtonElement>("wallet-qr-button"),
  byId<HTMLButtonElement>("topup-button"),
];

async function fetchWallet(): Promise<Wallet> {
  return (await buyerApi<Wallet>("GET", "/wallet")).data;
}

async function loadWallet(): Promise<void> {
  const request = ++latest.wallet;
  const status = byId("wallet-status");
  try {
    const wallet = await fetchWallet();
    if (request !== latest.wallet) return;
    byId("balance").textContent = money(wallet.balance_cents, wallet.currency);
    const held = wallet.held_cents
      ? `${money(wallet.held_cents, wallet.currency)} held for a pending order · `
      : "";
    byId("wallet-updated").textContent = wallet.updated_at
      ? `${held}Updated ${dateTime(wallet.updated_at)}`
      : held;
    for (const control of walletControls()) control.disabled = false;
    if (status.dataset.kind === "error") say(status, "");
    void loadTransactions();
  } catch (error) {
    const missing = error instanceof ApiProblem && error.status === 404;
    say(status, missing ? "The wallet is not available on this server yet." : describeError(error), "error");
    if (missing) for (const control of walletControls()) control.disabled = true;
  }
}

/** Amounts are positive; `direction` gives the sign (a DEDUCT is a debit where it is not stated). */
const debit = (row: Transaction) => (row.direction ? row.direction === "debit" : row.type === "DEDUCT");

async function loadTransactions(): Promise<void> {
  try {
    const { data } = await buyerApi<{ transactions: Transaction[] }>("GET", "/wallet/transactions");
    render(
      byId("transactions"),
      ...data.transactions
        .slice(0, 10)
        .map((row) =>
          h(
            "li",
            { class: "head" },
            h(
              "span",
              {},
              row.type.toLowerCase(),
              h("br"),
              h("small", { class: "muted" }, dateTime(row.created_at)),
            ),
            h("strong", {}, `${debit(row) ? "−" : "+"}${money(row.amount_cents, row.currency)}`),
          ),
        ),
    );
    if (data.transactions.length === 0)
      render(byId("transactions"), h("li", { class: "muted" }, "Nothing yet."));
  } catch {
    render(byId("transactions"), h("li", { class: "muted" }, "Activity is not available."));
  }
}

function renderTopupAttempt(): void {
  const pending = topupAttempt?.topup;
  show(byId("topup-pending"), Boolean(pending));
  show(byId("topup-pay"), DEV_TOOLS);
  if (pending) {
    byId("topup-summary").textContent = `Top-up of ${money(pending.amount_cents)} waiting for payment${
      DEV_TOOLS ? "" : ": complete it with the payment provider"
    }.`;
  }
}

byId<HTMLFormElement>("topup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const status = byId("topup-status");
  const amount = parseAmountCents(byId<HTMLInputElement>("topup-amount").value);
  if (amount === undefined) {
    say(status, "Enter an amount such as 20 or 12.50", "error");
    return;
  }
  // A retry of the same amount after no answer reuses the attempt's key, so it cannot top up twice.
  if (!topupAttempt || topupAttempt.topup || topupAttempt.amount_cents !== amount) {
    topupAttempt = { key: newIdempotencyKey(), amount_cents: amount };
    writeJson(TOPUP_KEY, topupAttempt);
  }
  const attempt = topupAttempt;
  void busy(byId<HTMLButtonElement>("topup-button"), async () => {
    say(status, "Starting the top-up…");
    try {
      const { data } = await buyerApi<NonNullable<TopupAttempt["topup"]>>("POST", "/wallet/topups", {
        idempotencyKey: attempt.key,
        body: { amount_cents: attempt.amount_cents },
      });
      attempt.topup = data;
      writeJson(TOPUP_KEY, attempt);
      say(status, "");
      renderTopupAttempt();
    } catch (error) {
      say(
        status,
        retryable(error)
          ? `${describeError(error)}. Press Top up again to retry safely.`
          : describeError(error),
        "error",
      );
      if (!retryable(error)) {
        topupAttempt = null;
        writeJson(TOPUP_KEY, null);
      }
    }
  });
});

byId("topup-pay").addEventListener("click", (event) => {
  const pending = topupAttempt?.topup;
  if (!pending) return;
  const status = byId("topup-status");
  void busy(event.currentTarget as HTMLButtonElement, async () => {
    say(status, "Paying…");
    try {
      const before = (await fetchWallet()).balance_cents;
      await buyerApi("POST", "/dev/simulate-payment", {
        body: { topup_id: pending.topup_id, amount_cents: pending.amount_cents },
      });
      const after = await settle(fetchWallet, (wallet) => wallet.balance_cents > before);
      topupAttempt = null;
      writeJson(TOPUP_KEY, null);
      renderTopupAttempt();
      await loadWallet();
      if (after.balance_cents > before)
        say(status, `${money(pending.amount_cents, after.currency)} added`, "ok");
      else say(status, "Payment sent: the balance updates as soon as it is confirmed");
    } catch (error) {
      say(status, describeError(error), "error");
    }
  });
});

byId("wallet-qr-button").addEventListener("click", () => {
  openQr({
    title: "Wallet",
    subtitle: "Show this code at the till to pay with your credit",
    label: "QR code for paying from your wallet",
    fetchToken: async () => (await buyerApi<QrToken>("POST", "/wallet/qr-token")).data,
  });
});

// ——— Start ———

const fromProvider = signInFromFragment();
const stored = localStorage.getItem(TOKEN_KEY);
if (fromProvider && "token" in fromProvider) signIn(fromProvider.token);
else if (usable(stored)) signIn(stored);
else signOut();
// After the screen is chosen: a refused sign-in leaves whoever was signed in (or nobody) as they were.
if (fromProvider && "refused" in fromProvider) noticeSignIn(fromProvider.refused);
