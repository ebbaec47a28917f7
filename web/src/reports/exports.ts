import { api, download } from "../lib/api";
import { byId, h, render, say } from "../lib/dom";
import { dateTime } from "../lib/format";

// The nightly CSV exports (GET /reports/exports): one file per UTC day, written by the cron trigger.

interface ExportList {
  exports: { name: string; size: number; uploaded_at: string }[];
  next_cursor: string | null;
}

function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Lists the nightly exports, newest first, each downloadable with the analyst's token. */
export async function loadExports(
  token: string | null,
  handleError: (error: unknown, status: HTMLElement) => void,
): Promise<void> {
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
