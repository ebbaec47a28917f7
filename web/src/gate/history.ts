import { ApiProblem, api } from "../lib/api";
import { byId, h, render } from "../lib/dom";
import { describeError, formatTicketCode } from "../lib/format";
import { gateReasonText } from "./offline-reasons";
import type { Entitlement } from "./scan-client";

// The session's count of accepted scans and its last scans, newest first, each with an Undo while the
// server still allows this device to annul it. Kept in sessionStorage, like the staff session itself, so
// a reload of the tab keeps them.

/** The server's default ANNUL_WINDOW_SECONDS: past it, only a supervisor can annul, so no Undo is offered. */
export const ANNUL_WINDOW_SECONDS = 900;
const HISTORY_LENGTH = 10;
const STORAGE_KEY = "passes.gate.history";
const UNDO_REASON = "Undone at the gate";

export interface HistoryEntry {
  /** The scan attempt's Idempotency-Key: a resend of the same attempt updates its entry. */
  id: string;
  /** When this page got the answer (its own clock, which also times the undo window). */
  at: string;
  ticketCode?: string;
  fn: string;
  verdict: "accepted" | "refused" | "unchecked";
  /** A refusal's code. */
  reason?: string;
  /** Decided on this device with no server (no Undo: the server has not seen it yet). */
  offline?: boolean;
  /** The same refusal again in a row (a refused code held in view): counted, not listed again. */
  repeats?: number;
  redemptionId?: string;
  undone?: boolean;
  /** The server refused an undo for good (too late, unknown): not offered again. */
  undoClosed?: boolean;
  /** The outcome of the last undo, in words. */
  message?: string;
}

interface Stored {
  sessionId: string;
  accepted: number;
  entries: HistoryEntry[];
}

interface Annulled {
  redemption_id: string;
  annulled_at: string;
  ticket_code: string;
  function: string;
  entitlements: Entitlement[];
}

export interface HistoryOptions {
  token(): string;
  sessionId(): string;
  /** Any failed request goes here too (sign-out on 401, session dropped on session_invalid). */
  onError(error: unknown): void;
}

export interface History {
  /** Adds the outcome of a scan attempt, or updates it when the attempt was resent. */
  record(entry: HistoryEntry): void;
  /** Shows the history of `sessionId`: a new session starts an empty one. */
  open(sessionId: string): void;
}

const VERDICT_WORDS = { accepted: "✓ Accepted", refused: "✗ Refused", unchecked: "! Not checked" } as const;

function clockTime(iso: string): string {
  return new Date(iso).toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

function reasonLine(entry: HistoryEntry): string {
  const reason = gateReasonText(entry.reason ?? "");
  return entry.repeats ? `${reason} (${entry.repeats} times)` : reason;
}

export function createHistory(options: HistoryOptions): History {
  const list = byId("history");
  const counter = byId("accepted-count");
  let stored: Stored = { sessionId: "", accepted: 0, entries: [] };
  /** Entries whose inline "give the use back?" question is open, and those with an undo on its way. */
  const confirming = new Set<string>();
  const undoing = new Set<string>();
  let expiryTimer: ReturnType<typeof setTimeout> | undefined;

  function save(): void {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(stored));
    draw();
  }

  function undoUntil(entry: HistoryEntry): number | undefined {
    if (entry.verdict !== "accepted" || !entry.redemptionId || entry.undone || entry.undoClosed)
      return undefined;
    const until = Date.parse(entry.at) + ANNUL_WINDOW_SECONDS * 1000;
    return until > Date.now() ? until : undefined;
  }

  async function undo(entry: HistoryEntry): Promise<void> {
    undoing.add(entry.id);
    draw();
    try {
      const { data } = await api<Annulled>(
        "POST",
        `/redemptions/${encodeURIComponent(entry.redemptionId ?? "")}/annul`,
        { token: options.token(), body: { session_id: options.sessionId(), reason: UNDO_REASON } },
      );
      const left = data.entitlements.find((entitlement) => entitlement.function === data.function);
      markUndone(
        entry,
        left
          ? `Use given back: ${left.remaining_uses} of ${left.total_uses} ${data.function} left`
          : "Use given back",
      );
    } catch (error) {
      if (error instanceof ApiProblem && error.code === "already_annulled") {
        markUndone(entry, "It was already undone");
      } else {
        if (error instanceof ApiProblem && (error.status === 403 || error.status === 404)) {
          entry.undoClosed = true;
        }
        entry.message = describeError(error);
        options.onError(error);
      }
    } finally {
      undoing.delete(entry.id);
      confirming.delete(entry.id);
      save();
    }
  }

  function markUndone(entry: HistoryEntry, message: string): void {
    entry.undone = true;
    entry.message = message;
    stored.accepted = Math.max(0, stored.accepted - 1);
  }

  function actions(entry: HistoryEntry): Node | null {
    if (undoUntil(entry) === undefined) return null;
    if (undoing.has(entry.id)) return h("p", { class: "muted" }, "Undoing…");
    if (!confirming.has(entry.id)) {
      return h(
        "button",
        {
          type: "button",
          class: "secondary history-undo",
          onclick: () => {
            confirming.add(entry.id);
            draw();
            list.querySelector<HTMLButtonElement>(`[data-confirm="${CSS.escape(entry.id)}"]`)?.focus();
          },
        },
        "Undo",
      );
    }
    return h(
      "div",
      { class: "history-confirm", role: "group", "aria-label": "Confirm undo" },
      h("p", { class: "history-question" }, `Give this ${entry.fn} use back?`),
      h(
        "div",
        { class: "row" },
        h(
          "button",
          { type: "button", class: "danger", "data-confirm": entry.id, onclick: () => void undo(entry) },
          "Yes, undo",
        ),
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: () => {
              confirming.delete(entry.id);
              draw();
            },
          },
          "Keep",
        ),
      ),
    );
  }

  function row(entry: HistoryEntry): HTMLLIElement {
    return h(
      "li",
      { "data-verdict": entry.undone ? "undone" : entry.verdict },
      h(
        "p",
        { class: "history-line" },
        h(
          "strong",
          {},
          entry.undone ? "↺ Undone" : `${VERDICT_WORDS[entry.verdict]}${entry.offline ? " offline" : ""}`,
        ),
        h("time", { datetime: entry.at }, clockTime(entry.at)),
      ),
      h(
        "p",
        { class: "history-line" },
        h(
          "span",
          { class: "code" },
          entry.ticketCode ? formatTicketCode(entry.ticketCode) : "Unknown ticket",
        ),
        h("span", {}, entry.fn),
      ),
      entry.reason ? h("p", { class: "muted" }, reasonLine(entry)) : null,
      entry.message ? h("p", { class: "muted" }, entry.message) : null,
      actions(entry),
    );
  }

  function draw(): void {
    counter.textContent = String(stored.accepted);
    render(
      list,
      ...(stored.entries.length > 0
        ? stored.entries.map(row)
        : [h("li", { class: "muted" }, "No scans yet in this session")]),
    );
    // Redraw when the next Undo expires, so an Undo the server would refuse is never offered.
    clearTimeout(expiryTimer);
    const next = Math.min(...stored.entries.map((entry) => undoUntil(entry) ?? Number.POSITIVE_INFINITY));
    if (Number.isFinite(next)) expiryTimer = setTimeout(draw, next - Date.now() + 50);
  }

  function open(sessionId: string): void {
    if (stored.sessionId === sessionId) return;
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as Stored | null;
      stored = saved?.sessionId === sessionId ? saved : { sessionId, accepted: 0, entries: [] };
    } catch {
      stored = { sessionId, accepted: 0, entries: [] };
    }
    confirming.clear();
    save();
  }

  function sameRefusal(a: HistoryEntry | undefined, b: HistoryEntry): a is HistoryEntry {
    return (
      a?.verdict === "refused" &&
      b.verdict === "refused" &&
      a.reason === b.reason &&
      a.offline === b.offline &&
      a.fn === b.fn &&
      a.ticketCode === b.ticketCode
    );
  }

  function record(entry: HistoryEntry): void {
    const previous = stored.entries.find((candidate) => candidate.id === entry.id);
    if (entry.verdict === "accepted" && previous?.verdict !== "accepted") stored.accepted += 1;
    const newest = stored.entries[0];
    if (sameRefusal(newest, entry)) {
      stored.entries[0] = { ...entry, repeats: (newest.repeats ?? 1) + 1 };
      save();
      return;
    }
    stored.entries = [entry, ...stored.entries.filter((candidate) => candidate.id !== entry.id)].slice(
      0,
      HISTORY_LENGTH,
    );
    save();
  }

  return { record, open };
}
