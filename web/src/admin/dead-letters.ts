import { busy, byId, h, say } from "../lib/dom";
import { dateTime } from "../lib/format";
import { adminApi } from "./session";
import { onTabOpen } from "./tabs";
import type { DeadLetter } from "./types";
import { errorText, PagedList } from "./ui";

// Dead letters: events the queue gave up on, with their last error; replay sends one to the queue again.
// A deployment without the dead-letter routes answers 404: the section then says so and nothing else.

/** The body as indented JSON, capped so that one huge event cannot make the page crawl. */
const MAX_BODY_CHARACTERS = 4_000;

function bodyText(body: unknown): string {
  const text = JSON.stringify(body, null, 2) ?? String(body);
  return text.length > MAX_BODY_CHARACTERS ? `${text.slice(0, MAX_BODY_CHARACTERS)}\n…` : text;
}

function renderDeadLetter(letter: DeadLetter): HTMLElement {
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const replayed = h("dd", {}, letter.replayed_at ? dateTime(letter.replayed_at) : "not yet");
  const replay = h(
    "button",
    { type: "button", class: "secondary" },
    letter.replayed_at ? "Replay again" : "Replay",
  );
  replay.addEventListener(
    "click",
    () =>
      void busy(replay, async () => {
        try {
          const path = `/admin/dead-letters/${encodeURIComponent(letter.id)}/replay`;
          const { data } = await adminApi<{ id: string; replayed_at: string }>("POST", path);
          replayed.textContent = dateTime(data.replayed_at);
          say(status, "Sent to the queue again", "ok");
        } catch (error) {
          say(status, errorText(error), "error");
        }
      }),
  );
  return h(
    "li",
    { class: "card item", "data-dead-letter": letter.id },
    h(
      "div",
      { class: "head" },
      h("h3", { class: "code" }, letter.queue),
      h("span", { class: "badge off" }, `${letter.attempts ?? "?"} attempts`),
    ),
    h("p", { class: "error-text" }, letter.error),
    h(
      "dl",
      { class: "facts" },
      h("div", {}, h("dt", {}, "Received"), h("dd", {}, dateTime(letter.received_at))),
      h("div", {}, h("dt", {}, "Replayed"), replayed),
    ),
    h("details", {}, h("summary", {}, "Event"), h("pre", { class: "body" }, bodyText(letter.body))),
    h("div", { class: "row actions" }, replay),
    status,
  );
}

export function setupDeadLetters(): void {
  const list = new PagedList<DeadLetter>({
    path: "/admin/dead-letters",
    key: "dead_letters",
    list: byId("dead-letters"),
    more: byId<HTMLButtonElement>("dead-letters-more"),
    status: byId("dead-letters-status"),
    empty: "No dead letters: every event was handled.",
    render: renderDeadLetter,
    missing: "Dead letters are not available on this server yet.",
  });
  onTabOpen("dead-letters", () => void list.reload());
  byId("dead-letters-refresh").addEventListener(
    "click",
    (event) => void busy(event.currentTarget as HTMLButtonElement, () => list.reload()),
  );
}
