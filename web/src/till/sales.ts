import { api } from "../lib/api";
import { busy, byId, h, render, say, show } from "../lib/dom";
import { describeError, money, timeOfDay } from "../lib/format";
import type { Staff } from "../lib/staff";
import type { RefundableSale } from "./refund";
import { readJson, writeJson } from "./store";
import type { Deduction, Refund, TillSale, TillSales } from "./types";

// This till's sales in the current shift (GET /pos/sessions/{id}/sales): its own receipts only, never a
// customer's history. The server lists a charge or a refund a few seconds after it was made (the wallet's
// journal sends it to the reports' copy and the receipt is written), so one this page just made is shown
// at once as "syncing" and counted in the totals, until the server's list has it.

const PENDING_KEY = "passes.pos.pending-sales";
/** How often, and how many times, the list is read again while a charge waits to appear in it. */
export const SALES_SYNC_POLL_MS = 1_500;
export const SALES_SYNC_MAX_POLLS = 12;
/** A charge the server never lists (its receipt is late) stops being shown as syncing after this. */
const PENDING_MAX_AGE_MS = 10 * 60_000;
const PAGE_SIZE = 50;

interface PendingSale {
  sessionId: string;
  sale: TillSale;
  addedAtMs: number;
}

export interface SalesOptions {
  staff: Staff;
  currency(): string;
  onRefund(sale: RefundableSale): void;
}

export function setupSales({ staff, currency, onRefund }: SalesOptions) {
  const list = byId("sales");
  const status = byId("sales-status");
  const moreButton = byId<HTMLButtonElement>("sales-more");
  let server: TillSales | null = null;
  let pending = readJson<PendingSale[]>(PENDING_KEY) ?? [];
  /** Only the newest request's answer is shown (a refresh may overtake a slower one). */
  let request = 0;
  let pollsLeft = 0;
  let pollTimer: ReturnType<typeof setTimeout> | undefined;

  function savePending(next: PendingSale[]): void {
    pending = next;
    writeJson(PENDING_KEY, next.length > 0 ? next : null);
  }

  /** What is still waiting for the server, for this session only. */
  function waiting(): TillSale[] {
    const sessionId = staff.session().session_id;
    const listed = new Set(server?.entries.map((entry) => entry.transaction_id));
    const now = Date.now();
    savePending(
      pending.filter(
        (entry) =>
          entry.sessionId === sessionId &&
          !listed.has(entry.sale.transaction_id) &&
          now - entry.addedAtMs < PENDING_MAX_AGE_MS,
      ),
    );
    return pending.map((entry) => entry.sale);
  }

  function draw(): void {
    if (!server) return;
    const unsynced = waiting();
    const entries = [...unsynced, ...server.entries];
    const unsyncedSales = unsynced.filter((sale) => sale.type === "DEDUCT");
    const unsyncedRefunds = unsynced.filter((sale) => sale.type === "REFUND");
    const sum = (sales: TillSale[]) => sales.reduce((cents, sale) => cents + sale.amount_cents, 0);
    const { totals } = server;
    const code = currency();
    byId("shift-total").textContent = money(
      totals.net_cents + sum(unsyncedSales) - sum(unsyncedRefunds),
      code,
    );
    const sales = totals.sales + unsyncedSales.length;
    const refunds = totals.refunds + unsyncedRefunds.length;
    byId("shift-summary").textContent = [
      `${sales} sale${sales === 1 ? "" : "s"} ${money(totals.sales_cents + sum(unsyncedSales), code)}`,
      `${refunds} refund${refunds === 1 ? "" : "s"} −${money(totals.refunds_cents + sum(unsyncedRefunds), code)}`,
      `since ${timeOfDay(server.from)}`,
    ].join(" · ");
    const refunded = new Map<string, number>();
    for (const entry of entries) {
      if (entry.type === "REFUND" && entry.reversal_of)
        refunded.set(entry.reversal_of, (refunded.get(entry.reversal_of) ?? 0) + entry.amount_cents);
    }
    const syncing = new Set(unsynced.map((sale) => sale.transaction_id));
    render(list, ...entries.map((entry) => row(entry, syncing.has(entry.transaction_id), refunded, code)));
    if (entries.length === 0) render(list, h("li", { class: "muted" }, "No sales yet in this shift."));
    show(moreButton, server.next_cursor !== null);
  }

  function row(entry: TillSale, syncing: boolean, refunded: Map<string, number>, code: string): HTMLElement {
    const isSale = entry.type === "DEDUCT";
    const left = entry.amount_cents - (refunded.get(entry.transaction_id) ?? 0);
    const time = timeOfDay(entry.created_at);
    return h(
      "li",
      { class: "till-sale", "data-type": entry.type, "data-syncing": syncing ? "true" : undefined },
      h("span", { class: "till-sale-time" }, time),
      h(
        "span",
        { class: "till-sale-what" },
        isSale ? "Sale" : "Refund",
        h("small", { class: "muted" }, `${entry.receipt_id}${syncing ? " · syncing…" : ""}`),
      ),
      h(
        "span",
        { class: "till-sale-amount" },
        isSale ? money(entry.amount_cents, code) : `−${money(entry.amount_cents, code)}`,
      ),
      isSale && left > 0
        ? h(
            "button",
            {
              type: "button",
              class: "danger",
              "aria-label": `Refund the ${money(left, code)} sale of ${time}`,
              onclick: () =>
                onRefund({
                  transactionId: entry.transaction_id,
                  receiptId: entry.receipt_id,
                  refundableCents: left,
                  createdAt: entry.created_at,
                }),
            },
            "Refund…",
          )
        : h("span", { class: "till-sale-done muted" }, isSale ? "refunded" : ""),
    );
  }

  async function load(cursor?: string): Promise<void> {
    const mine = ++request;
    const sessionId = staff.session().session_id;
    try {
      const { data } = await api<TillSales>("GET", `/pos/sessions/${encodeURIComponent(sessionId)}/sales`, {
        token: staff.token(),
        query: { limit: String(PAGE_SIZE), cursor },
      });
      if (mine !== request) return;
      server = cursor && server ? { ...data, entries: [...server.entries, ...data.entries] } : data;
      say(status, "");
      draw();
    } catch (error) {
      if (mine !== request) return;
      say(status, `Sales not updated: ${describeError(error)}`, "error");
      staff.handleError(error);
    }
  }

  /** Reads the list again until every charge made here is in it (or the polls run out). */
  function syncSoon(): void {
    pollsLeft = SALES_SYNC_MAX_POLLS;
    clearTimeout(pollTimer);
    const poll = async () => {
      await load();
      pollsLeft--;
      if (waiting().length > 0 && pollsLeft > 0) pollTimer = setTimeout(poll, SALES_SYNC_POLL_MS);
    };
    pollTimer = setTimeout(poll, SALES_SYNC_POLL_MS);
  }

  function addPending(sale: TillSale): void {
    const sessionId = staff.session().session_id;
    savePending([{ sessionId, sale, addedAtMs: Date.now() }, ...pending]);
    draw();
    syncSoon();
  }

  moreButton.addEventListener("click", () => {
    const cursor = server?.next_cursor;
    if (cursor) void busy(moreButton, () => load(cursor));
  });
  byId<HTMLButtonElement>("sales-refresh").addEventListener("click", (event) => {
    void busy(event.currentTarget as HTMLButtonElement, () => load());
  });

  return {
    start(): void {
      void load();
      if (waiting().length > 0) syncSoon();
    },
    stop(): void {
      clearTimeout(pollTimer);
      request++;
      server = null;
      render(list);
    },
    addCharge(deduction: Deduction): void {
      addPending({
        type: "DEDUCT",
        transaction_id: deduction.transaction_id,
        receipt_id: deduction.receipt.id,
        reversal_of: null,
        amount_cents: deduction.amount_cents,
        reference: null,
        created_at: deduction.receipt.created_at,
      });
    },
    addRefund(refund: Refund): void {
      addPending({
        type: "REFUND",
        transaction_id: refund.id,
        // The receipt's id is the transaction's with the receipt prefix (receiptIdForTransaction).
        receipt_id: refund.id.replace(/^txn_/, "rct_"),
        reversal_of: refund.reversal_of,
        amount_cents: refund.amount_cents,
        reference: null,
        created_at: refund.created_at,
      });
    },
  };
}
