import { ApiProblem } from "../lib/api";
import { busy, h, render, say, show } from "../lib/dom";
import { describeError } from "../lib/format";
import { adminApi } from "./session";
import type { Page } from "./types";

// Pieces every admin section uses: error text, an inline confirmation, and a list read page by page.

/** Words for the codes only admin requests meet; the shared ones come from lib/format. */
const ADMIN_REASONS: Record<string, string> = {
  username_taken: "That username is already taken",
  device_exists: "A device with this id is already registered",
  forbidden: "Not allowed: an admin cannot revoke their own access",
};

/** One line for a failed admin request; a validation failure names its first field and what is wrong. */
export function errorText(error: unknown): string {
  if (error instanceof ApiProblem) {
    const first = (error.problem.errors as { path?: string; message?: string }[] | undefined)?.[0];
    if (error.code === "validation_failed" && first?.message) {
      return `${first.path ? `${first.path}: ` : ""}${first.message}`;
    }
    const reason = ADMIN_REASONS[error.code];
    if (reason) return reason;
  }
  return describeError(error);
}

/** "bus, ferry" or "bus ferry" → ["bus", "ferry"], without empty or repeated entries. */
export function splitList(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

export function badge(text: string, on: boolean): HTMLElement {
  return h("span", { class: on ? "badge" : "badge off" }, text);
}

export function chips(values: string[], empty: string): HTMLElement {
  if (values.length === 0) return h("ul", { class: "chips" }, h("li", { class: "none-yet" }, empty));
  return h("ul", { class: "chips" }, ...values.map((value) => h("li", {}, value)));
}

/**
 * Asks before an action that takes something away: `actions` (a row of buttons) is swapped for the
 * question and two buttons until the admin answers. `act` runs on confirmation; what it throws is shown
 * in `status` and the buttons come back.
 */
export function confirmInline(
  actions: HTMLElement,
  status: HTMLElement,
  question: { text: string; confirm: string },
  act: () => Promise<void>,
): void {
  const confirm = h("button", { type: "button", class: "danger" }, question.confirm);
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const box = h(
    "div",
    { class: "confirm", role: "group", "aria-label": question.confirm },
    h("p", {}, question.text),
    h("div", { class: "row" }, confirm, cancel),
  );
  const restore = () => {
    box.remove();
    show(actions, true);
  };
  show(actions, false);
  actions.after(box);
  cancel.addEventListener("click", restore);
  confirm.addEventListener("click", () => {
    cancel.disabled = true;
    void busy(confirm, async () => {
      try {
        await act();
      } catch (error) {
        say(status, errorText(error), "error");
      } finally {
        restore();
      }
    });
  });
  confirm.focus();
}

export interface PagedListOptions<T> {
  path: string;
  /** The array's name in the answer: `products`, `operators`… */
  key: string;
  list: HTMLElement;
  more: HTMLButtonElement;
  status: HTMLElement;
  empty: string;
  render(item: T): HTMLElement;
  /** A 404 from the list itself: the route is not deployed here. */
  missing?: string;
}

/** A list read page by page with "Load more"; `reload()` starts again from the first page. */
export class PagedList<T> {
  private next: string | null = null;
  /** Answers can arrive after a newer reload started: only the latest one's is shown. */
  private generation = 0;

  constructor(private readonly options: PagedListOptions<T>) {
    options.more.addEventListener("click", () => void busy(options.more, () => this.load(false)));
  }

  reload(): Promise<void> {
    return this.load(true);
  }

  private async load(fromStart: boolean): Promise<void> {
    const { options } = this;
    const generation = fromStart ? ++this.generation : this.generation;
    if (fromStart) say(options.status, "Loading…");
    try {
      const page = await this.fetchPage(fromStart ? null : this.next);
      if (generation !== this.generation) return;
      this.next = page.next;
      const rows = page.items.map((item) => options.render(item));
      if (fromStart) render(options.list, ...rows);
      else options.list.append(...rows);
      show(options.more, page.next !== null);
      const shown = options.list.childElementCount;
      say(options.status, shown === 0 ? options.empty : "");
    } catch (error) {
      if (generation !== this.generation) return;
      if (options.missing && error instanceof ApiProblem && error.status === 404) {
        render(options.list);
        show(options.more, false);
        say(options.status, options.missing, "info");
        return;
      }
      say(options.status, errorText(error), "error");
    }
  }

  private async fetchPage(cursor: string | null): Promise<Page<T>> {
    const { data } = await adminApi<Record<string, unknown>>("GET", this.options.path, {
      query: { cursor: cursor ?? undefined },
    });
    return {
      items: (data[this.options.key] as T[]) ?? [],
      next: (data.next_cursor as string | null) ?? null,
    };
  }
}

/** A label and its field, for the small forms the sections build inside a list item. */
export function field(label: string, input: HTMLInputElement | HTMLSelectElement): HTMLElement[] {
  input.id ||= `field-${crypto.randomUUID()}`;
  return [h("label", { for: input.id }, label), input];
}
