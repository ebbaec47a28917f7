import { ApiProblem, api, download } from "./lib/api";
import { busy, byId, h, render, say, show } from "./lib/dom";
import { describeError, describeProblem, problemPaths } from "./lib/format";
import { isoDay, type Report, renderChart, renderTable } from "./reports/chart";
import { loadExports } from "./reports/exports";
import { downloadOfflineConflicts, loadOfflineConflicts } from "./reports/offline-conflicts";

// /reports: for analysts. Redemptions per day and function as an inline SVG stacked bar chart (with the
// same numbers in a table), filters, the raw events as CSV, and the nightly exports. A filter the API
// refuses is named, with the API's own words for what is wrong (errors[].message). Below, what offline
// gates left to look at in the same range.

const STORAGE_KEY = "passes.staff.analyst";
const DEFAULT_RANGE_DAYS = 7;
const DAY_MS = 86_400_000;

const loginForm = byId<HTMLFormElement>("login-form");
const work = byId("work");
const filters = byId<HTMLFormElement>("filters");
const reportStatus = byId("report-status");

interface StoredLogin {
  token: string;
  expiresAt: number;
}

let token: string | null = null;

function readLogin(): StoredLogin | null {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as StoredLogin | null;
    return stored && stored.expiresAt > Date.now() ? stored : null;
  } catch {
    return null;
  }
}

function setToken(next: StoredLogin | null): void {
  token = next?.token ?? null;
  if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(STORAGE_KEY);
  show(loginForm, !token);
  show(work, Boolean(token));
  if (token) {
    void loadReport();
    void loadExports(token, handleError);
  }
}

/** The filter fields a refusal names get `aria-invalid`, and the first of them the focus. */
function markInvalidFields(error: unknown): void {
  const paths = new Set(problemPaths(error));
  const fields = [...filters.querySelectorAll<HTMLInputElement>("input[name]")];
  for (const field of fields) {
    if (paths.has(field.name)) field.setAttribute("aria-invalid", "true");
    else field.removeAttribute("aria-invalid");
  }
  fields.find((field) => paths.has(field.name))?.focus();
}

function handleError(error: unknown, status: HTMLElement): void {
  say(status, describeProblem(error), "error");
  if (error instanceof ApiProblem && error.code === "unauthenticated") {
    setToken(null);
    say(byId("login-status"), "Your sign-in expired: sign in again", "error");
  }
}

loginForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(loginForm);
  void busy(byId<HTMLButtonElement>("login-button"), async () => {
    try {
      const { data: login } = await api<{ operator_token: string; expires_in: number }>(
        "POST",
        "/operators/login",
        {
          body: {
            username: String(data.get("username") ?? ""),
            password: String(data.get("password") ?? ""),
          },
        },
      );
      byId<HTMLInputElement>("password").value = "";
      say(byId("login-status"), "");
      setToken({ token: login.operator_token, expiresAt: Date.now() + login.expires_in * 1000 });
    } catch (error) {
      say(byId("login-status"), describeError(error), "error");
    }
  });
});

byId("sign-out").addEventListener("click", () => setToken(null));

// ——— Filters ———

function defaultRange(): void {
  const today = Date.now();
  byId<HTMLInputElement>("from").value = isoDay(today - (DEFAULT_RANGE_DAYS - 1) * DAY_MS);
  byId<HTMLInputElement>("to").value = isoDay(today);
}

function query(): Record<string, string> {
  const data = new FormData(filters);
  const value = (name: string) => String(data.get(name) ?? "").trim();
  return {
    from: value("from"),
    to: value("to"),
    function: value("function"),
    location_id: value("location_id"),
  };
}

filters.addEventListener("submit", (event) => {
  event.preventDefault();
  void busy(byId<HTMLButtonElement>("show-button"), loadReport);
});

function range(): { from: string; to: string } {
  const { from = "", to = "" } = query();
  return { from, to };
}

byId("conflicts-csv-button").addEventListener("click", (event) => {
  void busy(event.currentTarget as HTMLButtonElement, async () => {
    const status = byId("conflicts-status");
    try {
      say(status, `Downloaded ${await downloadOfflineConflicts(token, range())}`, "ok");
    } catch (error) {
      handleError(error, status);
    }
  });
});

byId("csv-button").addEventListener("click", (event) => {
  void busy(event.currentTarget as HTMLButtonElement, async () => {
    try {
      const name = await download(
        "/reports/redemptions",
        { token, query: { ...query(), format: "csv" }, accept: "text/csv" },
        "redemptions.csv",
      );
      say(reportStatus, `Downloaded ${name}`, "ok");
    } catch (error) {
      handleError(error, reportStatus);
    }
  });
});

// ——— Report ———

/** Answers can arrive out of order (filters changed mid-flight): only the latest request's is shown. */
let reportRequest = 0;

async function loadReport(): Promise<void> {
  const request = ++reportRequest;
  say(reportStatus, "Loading…");
  try {
    const { data } = await api<Report>("GET", "/reports/redemptions", { token, query: query() });
    if (request !== reportRequest) return;
    markInvalidFields(null);
    byId("total").textContent = `${data.total} redemption${data.total === 1 ? "" : "s"}`;
    renderChart(data);
    renderTable(data.rows);
    const functions = [...new Set(data.rows.map((row) => row.function))].sort();
    render(byId("function-list"), ...functions.map((name) => h("option", { value: name })));
    say(reportStatus, data.truncated ? "Showing the first groups only: narrow the filters" : "", "info");
    void loadOfflineConflicts(token, range(), handleError);
  } catch (error) {
    if (request !== reportRequest) return;
    // The numbers on screen no longer answer the filters as they are: they go, the reason stays.
    byId("total").textContent = "—";
    render(byId("chart"));
    render(byId("legend"));
    render(byId("rows"));
    handleError(error, reportStatus);
    markInvalidFields(error);
  }
}

defaultRange();
setToken(readLogin());
