import { byId, h, render, show } from "../lib/dom";
import { formatTicketCode } from "../lib/format";
import { announce } from "./feedback";
import { gateReasonText } from "./offline-reasons";
import type { Entitlement, ScanAccepted } from "./scan-client";

// The verdict fills the screen, readable at arm's length: ✓ ACCEPTED in green, ✗ REFUSED in red, ! NOT
// CHECKED in amber (the ticket was not judged, so it is neither), with the reason in plain words and the
// uses left. Accepted and refused clear back to "Ready" by themselves, so one passenger's answer never
// greets the next; "not checked" stays until it is retried or dismissed, because someone must act on it.
// A verdict the gate reached alone looks the same, marked OFFLINE: it is final for the holder, and the
// server hears of it when the network returns.

/** How long an accepted or refused verdict stays on screen: read at a glance, gone before the next person. */
export const VERDICT_HOLD_MS = 3_000;

export type Verdict =
  | { state: "pending"; text: string }
  | { state: "accepted"; data: ScanAccepted; confirmedOnRetry: boolean }
  | {
      state: "refused";
      code: string;
      fn: string;
      ticketCode?: string;
      entitlements?: Entitlement[];
      confirmedOnRetry: boolean;
    }
  | { state: "unchecked"; fn: string; reason: string; ticketCode?: string; retry?: () => void }
  /** Decided on this device with no server; `code` is the refusal's. */
  | { state: "offline"; decision: "accepted" | "refused"; code?: string; fn: string; ticketCode?: string };

const MARKS = { idle: "", pending: "", accepted: "✓", refused: "✗", unchecked: "!" } as const;
const OFFLINE_LABEL = "OFFLINE";

export interface VerdictView {
  show(verdict: Verdict): void;
  /** Back to "Ready" (also what a tap on the verdict does). */
  clear(): void;
}

export function createVerdictView(): VerdictView {
  const panel = byId("result");
  const mark = byId("verdict-mark");
  const word = byId("verdict");
  const mode = byId("verdict-mode");
  const reason = byId("reason");
  const ticket = byId("ticket");
  const uses = byId("uses");
  const note = byId("retry-note");
  const retryButton = byId<HTMLButtonElement>("retry-button");
  const dismissButton = byId<HTMLButtonElement>("dismiss-button");
  let holdTimer: ReturnType<typeof setTimeout> | undefined;
  let retry: (() => void) | undefined;

  function fill(
    state: keyof typeof MARKS,
    title: string,
    lines: { reason?: string; ticket?: string },
    offline = false,
  ): void {
    clearTimeout(holdTimer);
    panel.dataset.state = state;
    panel.dataset.offline = String(offline);
    mode.textContent = offline ? OFFLINE_LABEL : "";
    mark.textContent = MARKS[state];
    word.textContent = title;
    reason.textContent = lines.reason ?? "";
    ticket.textContent = lines.ticket ?? "";
    render(uses);
    note.textContent = "";
    retry = undefined;
    show(retryButton, false);
    show(dismissButton, state === "unchecked");
  }

  function showUses(entitlements: Entitlement[] | undefined, scanned: string): void {
    const sorted = [...(entitlements ?? [])].sort(
      (a, b) => Number(b.function === scanned) - Number(a.function === scanned),
    );
    render(
      uses,
      ...sorted.map((entitlement) =>
        h(
          "li",
          { class: entitlement.function === scanned ? "scanned" : undefined },
          h("span", {}, entitlement.function),
          h("strong", {}, `${entitlement.remaining_uses} of ${entitlement.total_uses} left`),
        ),
      ),
    );
  }

  function ticketLine(code: string | undefined, fn: string): string {
    return code ? `Ticket ${formatTicketCode(code)} · ${fn}` : fn;
  }

  function clear(): void {
    fill("idle", "Ready", { reason: "Hold a ticket's QR code in front of the camera" });
  }

  function holdThenClear(): void {
    holdTimer = setTimeout(clear, VERDICT_HOLD_MS);
  }

  function showVerdict(verdict: Verdict): void {
    switch (verdict.state) {
      case "pending":
        fill("pending", "Checking…", { reason: verdict.text });
        return;
      case "accepted": {
        const { data } = verdict;
        const left = data.entitlements.find((entitlement) => entitlement.function === data.function);
        fill("accepted", "ACCEPTED", {
          reason: left
            ? `${left.remaining_uses} ${data.function} ${left.remaining_uses === 1 ? "use" : "uses"} left`
            : "",
          ticket: ticketLine(data.ticket_code, data.function),
        });
        showUses(data.entitlements, data.function);
        if (verdict.confirmedOnRetry) note.textContent = "Confirmed on retry";
        announce("accepted");
        holdThenClear();
        return;
      }
      case "refused":
        fill("refused", "REFUSED", {
          reason: gateReasonText(verdict.code),
          ticket: ticketLine(verdict.ticketCode, verdict.fn),
        });
        showUses(verdict.entitlements, verdict.fn);
        if (verdict.confirmedOnRetry) note.textContent = "Confirmed on retry";
        announce("refused");
        holdThenClear();
        return;
      case "unchecked":
        fill("unchecked", "NOT CHECKED", {
          reason: verdict.reason,
          ticket: ticketLine(verdict.ticketCode, verdict.fn),
        });
        retry = verdict.retry;
        show(retryButton, Boolean(retry));
        announce("unchecked");
        return;
      case "offline": {
        const accepted = verdict.decision === "accepted";
        fill(
          verdict.decision,
          accepted ? "ACCEPTED" : "REFUSED",
          {
            reason: accepted
              ? "Decided on this device: sent to the server when the network returns"
              : gateReasonText(verdict.code ?? ""),
            ticket: ticketLine(verdict.ticketCode, verdict.fn),
          },
          true,
        );
        announce(verdict.decision);
        holdThenClear();
        return;
      }
    }
  }

  retryButton.addEventListener("click", (event) => {
    // The tap is for the button, not a dismissal of the verdict behind it.
    event.stopPropagation();
    retry?.();
  });
  dismissButton.addEventListener("click", (event) => {
    event.stopPropagation();
    clear();
  });
  panel.addEventListener("click", () => {
    if (panel.dataset.state !== "idle" && panel.dataset.state !== "pending") clear();
  });

  clear();
  return { show: showVerdict, clear };
}
