import { ApiProblem, api, download } from "./lib/api";
import { busy, byId, h, render, say, show } from "./lib/dom";
import { dateTime, describeError } from "./lib/format";

// /reports: for analysts. Redemptions per day and function as an inline SVG stacked bar chart (with the
// same numbers in a table), filters, the raw events as CSV, and the nightly exports.

interface ReportRow {
  day: string;
  function: string;
  location_id: string | null;
  redemptions: number;
}

interface Report {
  from: string;
  to: string;
  rows: ReportRow[];
  total: number;
  truncated: boolean;
}

interface ExportList {
  exports: { name: string; size: number; uploaded_at: string }[];
  next_cursor: string | null;
}

const STORAGE_KEY = "passes.staff.analyst";
const DEFAULT_RANGE_DAYS = 7;
const DAY_MS = 86_400_000;
/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"];
const SVG_NS = "http://www.w3.org/2000/svg";

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
    void loadExports();
  }
}

function handleError(error: unknown, status: HTMLElement): void {
  say(status, describeError(error), "error");
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

const isoDay = (time: number) => new Date(time).toISOString().slice(0, 10);

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
    byId("total").textContent = `${data.total} redemption${data.total === 1 ? "" : "s"}`;
    renderChart(data);
    renderTable(data.rows);
    const functions = [...new Set(data.rows.map((row) => row.function))].sort();
    render(byId("function-list"), ...functions.map((name) => h("option", { value: name })));
    say(reportStatus, data.truncated ? "Showing the first groups only: narrow the filters" : "", "info");
  } catch (error) {
    if (request === reportRequest) handleError(error, reportStatus);
  }
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  ...children: (Node | string)[]
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  element.append(...children);
  return element;
}

/** Every day of the report's range, so quiet days show as gaps instead of disappearing. */
function daysOf(report: Report): string[] {
  const days: string[] = [];
  const first = Date.parse(`${report.from.slice(0, 10)}T00:00:00Z`);
  const end = Date.parse(report.to);
  for (let time = first; time < end && days.length < 366; time += DAY_MS) days.push(isoDay(time));
  return days;
}

/** A round axis maximum: 1, 2, 5 × 10^n. */
function niceMax(value: number): number {
  if (value <= 5) return 5;
  const power = 10 ** Math.floor(Math.log10(value));
  return ([1, 2, 5, 10].find((step) => step * power >= value) ?? 10) * power;
}

function renderChart(report: Report): void {
  const days = daysOf(report);
  const functions = [...new Set(report.rows.map((row) => row.function))].sort();
  const counts = new Map<string, number>();
  for (const row of report.rows) {
    const key = `${row.day}|${row.function}`;
    counts.set(key, (counts.get(key) ?? 0) + row.redemptions);
  }
  const dayTotals = days.map((day) =>
    functions.reduce((sum, fn) => sum + (counts.get(`${day}|${fn}`) ?? 0), 0),
  );
  const max = niceMax(Math.max(0, ...dayTotals));

  // Drawn at the box's own width, so the labels keep their size from a phone to a desktop.
  const width = Math.max(300, Math.round(byId("chart").clientWidth || 640));
  const height = 260;
  const left = 36;
  const bottom = 28;
  const top = 10;
  const plotHeight = height - top - bottom;
  const slot = (width - left - 8) / Math.max(1, days.length);
  const barWidth = Math.max(1, Math.min(48, slot * 0.7));
  const y = (value: number) => top + plotHeight - (value / max) * plotHeight;

  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Redemptions per day from ${days[0] ?? ""} to ${days.at(-1) ?? ""}: ${report.total} in total`,
  });
  for (const tick of [0, max / 2, max].filter(Number.isInteger)) {
    chart.append(
      svg("line", { x1: left, x2: width - 4, y1: y(tick), y2: y(tick), stroke: "#d4dbe2" }),
      svg(
        "text",
        { x: left - 6, y: y(tick) + 4, "text-anchor": "end", "font-size": 11, fill: "#52606d" },
        String(tick),
      ),
    );
  }
  const labelEvery = Math.ceil(days.length / 8);
  days.forEach((day, index) => {
    const x = left + index * slot + (slot - barWidth) / 2;
    let base = 0;
    functions.forEach((fn, fnIndex) => {
      const value = counts.get(`${day}|${fn}`) ?? 0;
      if (value === 0) return;
      chart.append(
        svg(
          "rect",
          {
            x,
            y: y(base + value),
            width: barWidth,
            height: Math.max(0, y(base) - y(base + value)),
            fill: PALETTE[fnIndex % PALETTE.length] ?? "#000",
          },
          svg("title", {}, `${day} · ${fn}: ${value}`),
        ),
      );
      base += value;
    });
    if (index % labelEvery === 0) {
      chart.append(
        svg(
          "text",
          { x: x + barWidth / 2, y: height - 8, "text-anchor": "middle", "font-size": 11, fill: "#52606d" },
          day.slice(5),
        ),
      );
    }
  });
  render(byId("chart"), chart);
  render(
    byId("legend"),
    ...functions.map((fn, index) => {
      const swatch = h("i", { "aria-hidden": "true" });
      swatch.style.background = PALETTE[index % PALETTE.length] ?? "#000";
      return h("li", {}, swatch, fn);
    }),
  );
}

function renderTable(rows: ReportRow[]): void {
  render(
    byId("rows"),
    ...rows.map((row) =>
      h(
        "tr",
        {},
        h("td", {}, row.day),
        h("td", {}, row.function),
        h("td", {}, row.location_id ?? "—"),
        h("td", { class: "num" }, row.redemptions),
      ),
    ),
  );
  if (rows.length === 0)
    render(byId("rows"), h("tr", {}, h("td", { colspan: 4 }, "No redemptions in this range.")));
}

// ——— Exports ———

function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}

async function loadExports(): Promise<void> {
  const status = byId("exports-status");
  try {
    const { data } = await api<ExportList>("GET", "/reports/exports", { token });
    const newestFirst = [...data.exports].reverse();
    render(
      byId("exports"),
      ...newestFirst.map((file) =>
        h(
          "tr",
          {},
          h("td", { class: "code" }, file.name),
          h("td", { class: "num" }, size(file.size)),
          h("td", {}, dateTime(file.uploaded_at)),
          h(
            "td",
            {},
            h(
              "button",
              {
                type: "button",
                class: "secondary",
                "aria-label": `Download ${file.name}`,
                onclick: () =>
                  void download(
                    `/reports/exports/${encodeURIComponent(file.name)}`,
                    { token, accept: "text/csv" },
                    file.name,
                  ).catch((error: unknown) => handleError(error, status)),
              },
              "Download",
            ),
          ),
        ),
      ),
    );
    say(status, data.exports.length === 0 ? "No exports yet: the first is written after midnight UTC." : "");
  } catch (error) {
    handleError(error, status);
  }
}

defaultRange();
setToken(readLogin());
