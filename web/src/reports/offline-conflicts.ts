import { api, download } from "../lib/api";
import { byId, h, render, say } from "../lib/dom";
import { dateTime } from "../lib/format";

// What offline gates left to look at (GET /reports/offline-conflicts): uses accepted with none left
// (both sides: which gate let the holder in, and which one spent the last use), accepts beyond a gate's
// budget, and uploads that were not genuine. Same range as the redemptions above.

interface OfflineConflict {
  outcome: "conflict" | "over_budget" | "invalid";
  reason: string;
  scan_id: string;
  ticket_code: string | null;
  function: string;
  device_id: string;
  scanned_at: string;
  over_budget: boolean;
  other_device_id: string | null;
  other_scanned_at: string | null;
}

interface OfflineConflictReport {
  conflicts: OfflineConflict[];
  truncated: boolean;
}

const OUTCOME_LABELS: Record<OfflineConflict["outcome"], string> = {
  conflict: "Over-spent",
  over_budget: "Over budget",
  invalid: "Not genuine",
};

function otherSide(conflict: OfflineConflict): string {
  if (!conflict.other_device_id || !conflict.other_scanned_at) return "—";
  return `${conflict.other_device_id}, ${dateTime(conflict.other_scanned_at)}`;
}

/** Lists the flagged offline scans in `range`, oldest first. */
export async function loadOfflineConflicts(
  token: string | null,
  range: { from: string; to: string },
  handleError: (error: unknown, status: HTMLElement) => void,
): Promise<void> {
  const status = byId("conflicts-status");
  try {
    const { data } = await api<OfflineConflictReport>("GET", "/reports/offline-conflicts", {
      token,
      query: range,
    });
    render(
      byId("conflicts"),
      ...data.conflicts.map((conflict) =>
        h(
          "tr",
          { "data-outcome": conflict.outcome },
          h("td", {}, dateTime(conflict.scanned_at)),
          h(
            "td",
            {},
            OUTCOME_LABELS[conflict.outcome],
            h("br"),
            h("small", { class: "muted" }, conflict.reason),
          ),
          h("td", { class: "code" }, conflict.ticket_code ?? "—"),
          h("td", {}, conflict.function),
          h("td", { class: "code" }, conflict.device_id),
          h("td", {}, otherSide(conflict)),
        ),
      ),
    );
    const empty = data.conflicts.length === 0 ? "None in this range." : "";
    say(status, data.truncated ? "Showing the first rows only: download the CSV for all" : empty);
  } catch (error) {
    handleError(error, status);
  }
}

export function downloadOfflineConflicts(token: string | null, range: { from: string; to: string }) {
  return download(
    "/reports/offline-conflicts",
    { token, query: { ...range, format: "csv" }, accept: "text/csv" },
    "offline-conflicts.csv",
  );
}
