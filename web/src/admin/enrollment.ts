import { byId, say, show } from "../lib/dom";
import { onSignOut } from "./session";
import type { EnrollmentCode } from "./types";

// The one-time enrollment code, shown large at the top of the devices section right after it is issued,
// with its expiry counting down and a copy button. The API never shows a code again, so it stays until
// the admin dismisses it or it expires.

const TICK_MS = 1_000;
let timer: ReturnType<typeof setInterval> | undefined;
let current: EnrollmentCode | null = null;

function timeLeft(expiresAt: number): string {
  const seconds = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
  if (seconds === 0) return "expired: issue a new code";
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${String(seconds % 60).padStart(2, "0")} left`;
}

function tick(): void {
  if (!current) return;
  const expiresAt = Date.parse(current.enrollment_expires_at);
  byId("enrollment-left").textContent = timeLeft(expiresAt);
  const expired = expiresAt <= Date.now();
  byId("enrollment-panel").dataset.state = expired ? "expired" : "live";
  if (expired) stopTicking();
}

function stopTicking(): void {
  clearInterval(timer);
  timer = undefined;
}

export function showEnrollmentCode(code: EnrollmentCode): void {
  current = code;
  const panel = byId("enrollment-panel");
  byId("enrollment-device").textContent = code.device_id;
  byId("enrollment-code").textContent = code.enrollment_code;
  byId("enrollment-expiry").textContent = new Date(code.enrollment_expires_at).toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
  });
  say(byId("enrollment-status"), "");
  show(panel, true);
  stopTicking();
  tick();
  timer = setInterval(tick, TICK_MS);
  panel.scrollIntoView({ block: "start", behavior: "smooth" });
  byId("enrollment-copy").focus({ preventScroll: true });
}

function hide(): void {
  current = null;
  stopTicking();
  byId("enrollment-code").textContent = "";
  show(byId("enrollment-panel"), false);
}

/** Copies with the Clipboard API; where it is refused, selects the code so that a long press copies it. */
async function copyCode(): Promise<void> {
  const status = byId("enrollment-status");
  if (!current) return;
  try {
    await navigator.clipboard.writeText(current.enrollment_code);
    say(status, "Copied", "ok");
  } catch {
    const selection = getSelection();
    selection?.selectAllChildren(byId("enrollment-code"));
    say(status, "Copying is blocked here: the code is selected, copy it by hand", "info");
  }
}

export function setupEnrollmentPanel(): void {
  byId("enrollment-copy").addEventListener("click", () => void copyCode());
  byId("enrollment-done").addEventListener("click", hide);
  onSignOut(hide);
}
