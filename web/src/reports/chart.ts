import { byId, h, render } from "../lib/dom";

// Redemptions per day and function as an inline SVG stacked bar chart, drawn at the box's own width.

export interface ReportRow {
  day: string;
  function: string;
  location_id: string | null;
  redemptions: number;
}

export interface Report {
  from: string;
  to: string;
  rows: ReportRow[];
  total: number;
  truncated: boolean;
}

const DAY_MS = 86_400_000;
/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"];
const SVG_NS = "http://www.w3.org/2000/svg";

export const isoDay = (time: number) => new Date(time).toISOString().slice(0, 10);

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

export function renderChart(report: Report): void {
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

export function renderTable(rows: ReportRow[]): void {
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
