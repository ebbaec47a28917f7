import { byId } from "../lib/dom";

// The line above the scanner that says how the gate is deciding: online, or offline with how many
// decisions wait for the server, and how old the offline kit is (past the budget's limit, offline scans
// are refused). `data-state` and `data-waiting` on #offline-status carry the same for tests and styles.

export type ConnectionState =
  /** The server answers and nothing waits. */
  | "online"
  /** No network, or a network that answers nothing: scans are decided on this device. */
  | "offline"
  /** Queued decisions are being uploaded. */
  | "syncing"
  /** The server answers but refused the last upload (see `problem`): the decisions wait. */
  | "waiting";

export interface OfflineStatusFacts {
  state: ConnectionState;
  waiting: number;
  kit: { issuedAtMs: number; clockOffsetMs: number; maxOfflineSeconds: number } | undefined;
  problem?: string;
}

/** The kit's age is redrawn this often while nothing else changes. */
const AGE_REDRAW_MS = 15_000;

function scans(count: number): string {
  return `${count} ${count === 1 ? "scan" : "scans"}`;
}

function age(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function stateLine(facts: OfflineStatusFacts): string {
  switch (facts.state) {
    case "online":
      return "Online · all scans synced";
    case "offline":
      return `Offline — ${scans(facts.waiting)} waiting`;
    case "syncing":
      return `Syncing ${scans(facts.waiting)}…`;
    case "waiting":
      return `Online · ${scans(facts.waiting)} waiting: ${facts.problem ?? "not synced yet"}`;
  }
}

function kitLine(facts: OfflineStatusFacts): string {
  const { kit } = facts;
  if (!kit) return "No offline kit yet: without the network, scans cannot be checked";
  const ageMs = Date.now() + kit.clockOffsetMs - kit.issuedAtMs;
  const line = `Offline kit from ${age(ageMs)} ago`;
  const tooOld = ageMs > kit.maxOfflineSeconds * 1000;
  return tooOld && facts.state === "offline" ? `${line}: too old, offline scans are refused` : line;
}

export interface OfflineStatusView {
  show(facts: OfflineStatusFacts): void;
}

export function createOfflineStatus(): OfflineStatusView {
  const panel = byId("offline-status");
  const stateText = byId("connection-state");
  const kitText = byId("kit-age");
  let shown: OfflineStatusFacts | undefined;

  function draw(): void {
    if (!shown) return;
    panel.dataset.state = shown.state;
    panel.dataset.waiting = String(shown.waiting);
    stateText.textContent = stateLine(shown);
    kitText.textContent = kitLine(shown);
  }

  setInterval(draw, AGE_REDRAW_MS);
  return {
    show(facts) {
      shown = facts;
      draw();
    },
  };
}
