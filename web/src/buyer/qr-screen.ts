import { NetworkError } from "../lib/api";
import { byId, render, say, show } from "../lib/dom";
import { describeError, timeOfDay } from "../lib/format";
import { drawQr } from "../lib/qr";
import type { OfflineCodes } from "./offline-codes";
import type { QrToken } from "./types";
import { keepScreenOn, letScreenSleep } from "./wake-lock";

// The full-screen QR code, for a ticket at a gate or the wallet at a till. The code is short-lived and
// replaced before it lapses; while it is on screen the source is watched, so that a scan or a charge is
// noticed, said, and answered with a fresh code; and the screen is kept awake. All of it is bounded: it
// stops when the screen closes, watching pauses while the page is hidden, and after QR_SCREEN_MAX_MS the
// screen pauses until the buyer asks for a new code. A ticket also keeps codes on the phone: when the
// network is gone (or too slow to replace a lapsing code) the screen shows the kept code whose window is
// now, switching at each window's end, and says so; when none is left it says that, and shows no code.

/** While a code is on screen its source is read this often, to notice a scan or a charge. */
const QR_POLL_MS = 4_000;
/** A code stays up (refreshed, watched, screen awake) this long before pausing to save battery. */
const QR_SCREEN_MAX_MS = 10 * 60_000;
/** Wait before asking again for a code that could not be fetched. */
const QR_RETRY_MS = 3_000;
/** Without a network, look for one this often (and at once when the browser says it is back). */
const QR_OFFLINE_RETRY_MS = 10_000;
/** Said instead of a code when the network is gone and no kept code covers now. */
const NO_KEPT_CODES = "No saved codes left: connect to the internet to get new ones";

/** What a look at the source found. */
export interface QrWatch {
  /** Said over the code, e.g. "Scanned: 9 bus left" or "Paid €4.50 · balance €15.50". */
  notice?: string;
  /** Shown under the code, e.g. the uses left. */
  details?: Node[];
  /** The code on screen was used: show a fresh one at once. */
  spent?: boolean;
}

export interface QrSource {
  title: string;
  subtitle: string;
  /** The subtitle is a code to read out or type (set in monospace). */
  subtitleIsCode?: boolean;
  label: string;
  fetchToken(): Promise<QrToken>;
  /** Codes kept on the phone for when the network is gone (a ticket's; the wallet's code has none). */
  offline?: OfflineCodes;
  /** Looks at the source now; the first look sets the baseline. */
  watch?(): Promise<QrWatch | undefined>;
  /** After the screen closed (the list behind may show what changed). */
  closed?(): void;
}

interface QrState {
  source: QrSource;
  openedAt: number;
  issuedAt: number;
  refreshAt: number;
  expiresAt: number;
  ticker?: ReturnType<typeof setInterval>;
  refreshTimer?: ReturnType<typeof setTimeout>;
  /** Switches to the next kept code at the end of the shown one's window. */
  keptTimer?: ReturnType<typeof setTimeout>;
  pollTimer?: ReturnType<typeof setTimeout>;
  /** A look at the source is under way: another would start a second chain of looks. */
  polling: boolean;
  paused: boolean;
  /** Showing kept codes (or saying none is left), since no fresh code came. */
  offline: boolean;
}

const dialog = byId<HTMLDialogElement>("qr-dialog");
const canvas = byId<HTMLCanvasElement>("qr-canvas");
const notice = byId("qr-notice");
const offlineNote = byId("qr-offline-note");
let qr: QrState | null = null;

/** Fetch the next code this long before the current one lapses: covers a slow network, stays short-lived. */
function refreshMarginSeconds(expiresIn: number): number {
  return Math.min(10, Math.max(3, Math.floor(expiresIn / 5)));
}

export function openQr(source: QrSource): void {
  stopQr();
  byId("qr-title").textContent = source.title;
  byId("qr-code").textContent = source.subtitle;
  byId("qr-code").className = source.subtitleIsCode ? "code" : "";
  canvas.setAttribute("aria-label", source.label);
  render(byId("qr-uses"));
  if (!dialog.open) dialog.showModal();
  start({
    source,
    openedAt: 0,
    issuedAt: 0,
    refreshAt: 0,
    expiresAt: 0,
    polling: false,
    paused: false,
    offline: false,
  });
}

function start(state: QrState): void {
  const now = Date.now();
  Object.assign(state, {
    openedAt: now,
    issuedAt: now,
    refreshAt: now,
    expiresAt: now,
    paused: false,
    offline: false,
  });
  qr = state;
  canvas.dataset.state = "loading";
  say(byId("qr-status"), "");
  show(notice, false);
  show(offlineNote, false);
  show(byId("qr-resume"), false);
  byId("qr-countdown").textContent = "Getting a code…";
  keepScreenOn();
  state.ticker = setInterval(() => tick(state), 250);
  void refresh(state);
  void state.source.offline?.refill();
  if (state.source.watch) void poll(state);
}

/** The next try for a fresh code; replaces any other, so that overlapping tries end in one chain. */
function scheduleRefresh(state: QrState, delayMs: number): void {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => void refresh(state), delayMs);
}

async function refresh(state: QrState): Promise<void> {
  clearTimeout(state.refreshTimer);
  try {
    const { token, expires_in } = await state.source.fetchToken();
    if (qr !== state || state.paused) return;
    leaveOffline(state);
    drawQr(canvas, token);
    canvas.dataset.state = "live";
    const now = Date.now();
    state.issuedAt = now;
    state.expiresAt = now + expires_in * 1000;
    state.refreshAt = state.expiresAt - refreshMarginSeconds(expires_in) * 1000;
    scheduleRefresh(state, state.refreshAt - now);
    const status = byId("qr-status");
    if (status.dataset.kind === "error") say(status, "");
    tick(state);
    // Online: keep minutes of codes in hand for when the signal goes.
    void state.source.offline?.refill();
  } catch (error) {
    if (qr !== state || state.paused) return;
    const { offline } = state.source;
    if (offline && (error instanceof NetworkError || !navigator.onLine)) {
      // Read again: this screen may have opened before a batch was kept, or a list read dropped it.
      await offline.load();
      if (qr !== state || state.paused) return;
      showKept(state, offline);
      scheduleRefresh(state, QR_OFFLINE_RETRY_MS);
      return;
    }
    say(byId("qr-status"), `${describeError(error)}: trying again…`, "error");
    scheduleRefresh(state, QR_RETRY_MS);
  }
}

/**
 * No fresh code: shows the kept code whose window is now and switches at the window's end, or, with none
 * left, says so and shows nothing, since a gate would refuse a lapsed code and the buyer would not know why.
 */
function showKept(state: QrState, offline: OfflineCodes): void {
  clearTimeout(state.keptTimer);
  state.offline = true;
  // The note says why no fresh code came; an error line under it would repeat it.
  say(byId("qr-status"), "");
  show(offlineNote, true);
  const now = Date.now();
  const kept = offline.codeAt(now);
  if (!kept) {
    canvas.getContext("2d")?.clearRect(0, 0, canvas.width, canvas.height);
    canvas.dataset.state = "empty";
    say(offlineNote, NO_KEPT_CODES, "error");
    byId("qr-countdown").textContent = "";
    byId<HTMLProgressElement>("qr-progress").value = 0;
    return;
  }
  drawQr(canvas, kept.token);
  canvas.dataset.state = "live";
  say(
    offlineNote,
    `Offline: showing saved codes, valid until ${timeOfDay(new Date(offline.until()).toISOString())}`,
  );
  Object.assign(state, { issuedAt: kept.from, refreshAt: kept.until, expiresAt: kept.until });
  state.keptTimer = setTimeout(() => showKept(state, offline), kept.until - now);
  tick(state);
}

/** A fresh code came: the kept ones wait for the next time the network goes. */
function leaveOffline(state: QrState): void {
  state.offline = false;
  clearTimeout(state.keptTimer);
  show(offlineNote, false);
}

function tick(state: QrState): void {
  if (qr !== state) return;
  const now = Date.now();
  if (now - state.openedAt >= QR_SCREEN_MAX_MS) {
    pause(state);
    return;
  }
  // Still loading, or nothing on screen to count down.
  if (canvas.dataset.state !== "live") return;
  const progress = byId<HTMLProgressElement>("qr-progress");
  if (now >= state.expiresAt) {
    const { offline } = state.source;
    // No fresh code in time (the network is gone, or too slow): a kept code's window may be now.
    if (offline && (state.offline || offline.codeAt(now))) {
      // A request unanswered this long may hang for minutes: try another alongside, as without a network.
      if (!state.offline) scheduleRefresh(state, QR_OFFLINE_RETRY_MS);
      showKept(state, offline);
      return;
    }
    // Never leave an expired code up: a gate would refuse it and the buyer would not know why.
    canvas.dataset.state = "expired";
    byId("qr-countdown").textContent = "Code expired: getting a new one…";
    progress.value = 0;
    return;
  }
  const seconds = Math.max(0, Math.ceil((state.refreshAt - now) / 1000));
  byId("qr-countdown").textContent = `New code in ${seconds} s`;
  progress.value = Math.max(0, (state.refreshAt - now) / Math.max(1, state.refreshAt - state.issuedAt));
}

/** Reads the source now and then every QR_POLL_MS, skipping reads while the page is hidden. */
async function poll(state: QrState): Promise<void> {
  if (qr !== state || state.paused || state.polling) return;
  clearTimeout(state.pollTimer);
  state.polling = true;
  try {
    if (document.visibilityState === "visible") {
      const seen = await state.source.watch?.();
      if (qr === state && !state.paused) {
        if (seen?.details) render(byId("qr-uses"), ...seen.details);
        if (seen?.notice) {
          notice.textContent = seen.notice;
          show(notice, true);
        }
        if (seen?.spent) void refresh(state);
      }
    }
  } catch {
    // The code on screen stays valid; the next look tries again.
  } finally {
    state.polling = false;
  }
  if (qr === state && !state.paused) state.pollTimer = setTimeout(() => void poll(state), QR_POLL_MS);
}

function halt(state: QrState): void {
  clearInterval(state.ticker);
  clearTimeout(state.refreshTimer);
  clearTimeout(state.keptTimer);
  clearTimeout(state.pollTimer);
  letScreenSleep();
}

/** Long enough on screen: stop refreshing and watching, let the screen sleep, offer a new code. */
function pause(state: QrState): void {
  state.paused = true;
  halt(state);
  leaveOffline(state);
  canvas.dataset.state = "expired";
  byId("qr-countdown").textContent = "Paused to save battery";
  byId<HTMLProgressElement>("qr-progress").value = 0;
  show(byId("qr-resume"), true);
}

/** Stops the current code; returns what was shown, if anything. */
function stopQr(): QrSource | undefined {
  if (!qr) return undefined;
  halt(qr);
  const { source } = qr;
  qr = null;
  return source;
}

export function closeQr(): void {
  if (dialog.open) dialog.close();
  stopQr();
}

byId("qr-resume").addEventListener("click", () => {
  if (qr) start(qr);
});
byId("qr-close").addEventListener("click", () => dialog.close());
// Also reached with Escape.
dialog.addEventListener("close", () => stopQr()?.closed?.());
// Back from the background: look at once, a charge or scan may have happened meanwhile.
document.addEventListener("visibilitychange", () => {
  if (qr?.source.watch && document.visibilityState === "visible") void poll(qr);
});
// The network is back: a fresh code at once rather than at the next offline retry.
window.addEventListener("online", () => {
  if (qr?.offline && !qr.paused) void refresh(qr);
});
