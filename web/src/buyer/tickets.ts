import { byId, h, render, say } from "../lib/dom";
import { dateTime, describeError, formatTicketCode } from "../lib/format";
import { keepOfflineCodesFor, offlineCodes } from "./offline-codes";
import { openQr, type QrWatch } from "./qr-screen";
import { buyerApi } from "./session";
import { openTab } from "./tabs";
import type { Entitlement, QrToken, Ticket } from "./types";

// The buyer's tickets, and each one's rotating QR code for the gates. While a code is shown the ticket
// is re-read, so that a scan is noticed, said, and answered with a fresh code for the next gate; and the
// phone keeps the next minutes of codes, for a gate out of the signal's reach (./offline-codes.ts).

/** Sequence number of list reads: a slower, older answer must not overwrite a newer one. */
let latestRead = 0;

function functionChips(functions: { function: string; text: string; empty?: boolean }[]): HTMLUListElement {
  return h(
    "ul",
    { class: "chips" },
    ...functions.map((item) =>
      h("li", { class: item.empty ? "none" : undefined }, `${item.function} ${item.text}`),
    ),
  );
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
    h("p", { class: "code" }, formatTicketCode(ticket.code)),
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
  const { tickets } = (await buyerApi<{ tickets: Ticket[] }>("GET", "/my/tickets")).data;
  // Whoever reads the list drops the kept codes of used-up tickets: a gate would only refuse them.
  const active = tickets.filter((ticket) => ticket.status === "ACTIVE");
  void keepOfflineCodesFor(active.map((ticket) => ticket.code));
  return tickets;
}

export async function loadTickets(): Promise<void> {
  const read = ++latestRead;
  const status = byId("tickets-status");
  try {
    const tickets = await fetchTickets();
    if (read !== latestRead) return;
    render(byId("tickets"), ...tickets.map(ticketCard));
    if (tickets.length === 0) say(status, "No tickets yet: buy a pass first.");
  } catch (error) {
    say(status, `Could not load your tickets: ${describeError(error)}`, "error");
  }
}

/** Opens the tickets with a line on top, e.g. after a payment. */
export function announceTickets(text: string): void {
  openTab("tickets");
  say(byId("tickets-status"), text, "ok");
}

byId("tickets-refresh").addEventListener("click", () => {
  say(byId("tickets-status"), "");
  void loadTickets();
});

function openTicketQr(ticket: Ticket): void {
  let before: Entitlement[] | undefined;
  openQr({
    title: ticket.product_name,
    subtitle: formatTicketCode(ticket.code),
    subtitleIsCode: true,
    label: `QR code for ticket ${ticket.code}`,
    fetchToken: async () =>
      (await buyerApi<QrToken>("POST", `/tickets/${encodeURIComponent(ticket.code)}/qr-token`)).data,
    offline: offlineCodes(ticket.code),
    watch: async () => {
      const uses = (await fetchTickets()).find((t) => t.code === ticket.code)?.entitlements;
      if (!uses) return undefined;
      const seen: QrWatch = { details: [...entitlementChips(uses).children] };
      if (before && JSON.stringify(before) !== JSON.stringify(uses)) {
        // A scan spent this code: say so, and show a fresh one for the next gate.
        const earlier = before;
        const spent = uses.find((now) =>
          earlier.some((old) => old.function === now.function && old.remaining_uses > now.remaining_uses),
        );
        if (spent) seen.notice = `Scanned: ${spent.remaining_uses} ${spent.function} left`;
        seen.spent = true;
      }
      before = uses;
      return seen;
    },
    // Afterwards the list behind shows what the scans spent.
    closed: () => void loadTickets(),
  });
}
