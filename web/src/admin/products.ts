import { DO_LOCATION_HINT_NAMES, DO_LOCATION_HINTS } from "../../../src/domain/placement";
import { ApiProblem } from "../lib/api";
import { busy, byId, h, say, show } from "../lib/dom";
import { money, parseAmountCents } from "../lib/format";
import { adminApi } from "./session";
import { onTabOpen } from "./tabs";
import type { AdminProduct, ProductFunction } from "./types";
import { badge, errorText, field, PagedList } from "./ui";

// Products: every product with its inventory (sellable, reserved, sold, available) and whether it is on
// sale; create one; change its price, units for sale or active flag. Units for sale never go below what
// is reserved or sold: the API refuses with `sellable_below_committed`, shown beside the field.

/** "25", "25.50", "0" → cents; a product may be free, so 0 is a price here (unlike a payment amount). */
function priceCents(text: string): number | undefined {
  return /^\s*0+(?:[.,]0{1,2})?\s*$/.test(text) ? 0 : parseAmountCents(text);
}

const FUNCTION_ENTRY = /^([a-z][a-z0-9_-]{0,31})\s*(?:[:×*]\s*|\s+)(\d{1,4})$/;

/** "bus 10, ferry 2" (or "bus:10", "bus ×10") → functions, or the first entry that is not one. */
export function parseFunctions(text: string): ProductFunction[] | string {
  const entries = text
    .split(/[,\n;]+/)
    .map((entry) => entry.trim().toLowerCase())
    .filter(Boolean);
  if (entries.length === 0) return "Name at least one function with its uses, like: bus 10";
  const functions: ProductFunction[] = [];
  for (const entry of entries) {
    const match = entry.match(FUNCTION_ENTRY);
    if (!match?.[1] || !match[2]) return `"${entry}" is not a function and its uses, like: bus 10`;
    functions.push({ function: match[1], uses: Number(match[2]) });
  }
  return functions;
}

const functionsText = (functions: ProductFunction[]) =>
  functions.map((entry) => `${entry.function} ×${entry.uses}`).join(" · ");

/** The venue region choices: none (near the first gate that scans) or a Durable Objects location hint. */
function regionOptions(selected: string | null): HTMLOptionElement[] {
  return [
    h("option", { value: "", selected: selected === null }, "None: near the first gate that scans"),
    ...DO_LOCATION_HINTS.map((hint) =>
      h("option", { value: hint, selected: selected === hint }, `${DO_LOCATION_HINT_NAMES[hint]} (${hint})`),
    ),
  ];
}

const regionName = (region: string | null) =>
  region === null
    ? "no venue region"
    : (DO_LOCATION_HINT_NAMES[region as keyof typeof DO_LOCATION_HINT_NAMES] ?? region);

function stock(product: AdminProduct): HTMLElement {
  const cell = (name: string, value: number, extra = "") =>
    h("div", { class: extra }, h("dt", {}, name), h("dd", {}, value));
  return h(
    "dl",
    { class: "stock" },
    cell("For sale", product.sellable),
    cell("Reserved", product.reserved),
    cell("Sold", product.sold),
    cell("Available", product.available, product.available === 0 ? "empty" : ""),
  );
}

function renderProduct(product: AdminProduct, message = ""): HTMLElement {
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const price = h("input", {
    inputmode: "decimal",
    autocomplete: "off",
    value: (product.price_cents / 100).toFixed(2),
  });
  const sellable = h("input", {
    type: "number",
    min: 0,
    max: 1_000_000,
    step: 1,
    inputmode: "numeric",
    value: product.sellable,
  });
  const active = h("input", { type: "checkbox", checked: product.active });
  const region = h("select", {}, ...regionOptions(product.venue_region));
  const save = h("button", { type: "submit" }, "Save");
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const edit = h("button", { type: "button", class: "secondary" }, "Edit");
  const actions = h("div", { class: "row actions" }, edit);
  const form = h(
    "form",
    { class: "fields edit", hidden: true, "aria-label": `Edit ${product.name}` },
    ...field(`Price (${product.currency})`, price),
    ...field(`Units for sale (at least ${product.reserved + product.sold}: reserved + sold)`, sellable),
    ...field("Venue region (applies to tickets whose counters do not exist yet)", region),
    h("label", { class: "check" }, active, "On sale (listed in the catalog)"),
    h("div", { class: "row" }, save, cancel),
  );
  const item = h(
    "li",
    { class: "card item", "data-product": product.id },
    h(
      "div",
      { class: "head" },
      h("h3", {}, product.name),
      badge(product.active ? "On sale" : "Inactive", product.active),
    ),
    product.description ? h("p", { class: "muted" }, product.description) : null,
    h(
      "p",
      {},
      h("strong", {}, money(product.price_cents, product.currency)),
      " · ",
      functionsText(product.functions),
      " · ",
      regionName(product.venue_region),
    ),
    stock(product),
    h("p", { class: "muted code" }, product.id),
    actions,
    form,
    status,
  );
  const toggle = (editing: boolean) => {
    show(form, editing);
    show(actions, !editing);
    if (editing) price.focus();
  };
  edit.addEventListener("click", () => toggle(true));
  cancel.addEventListener("click", () => {
    sellable.removeAttribute("aria-invalid");
    say(status, "");
    toggle(false);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sellable.removeAttribute("aria-invalid");
    const cents = priceCents(price.value);
    if (cents === undefined) return say(status, "The price is not an amount, like 25.00", "error");
    const patch: Record<string, unknown> = {};
    if (cents !== product.price_cents) patch.price_cents = cents;
    if (Number(sellable.value) !== product.sellable) patch.sellable = Number(sellable.value);
    if (active.checked !== product.active) patch.active = active.checked;
    const venueRegion = region.value === "" ? null : region.value;
    if (venueRegion !== product.venue_region) patch.venue_region = venueRegion;
    if (Object.keys(patch).length === 0) return say(status, "Nothing changed");
    void busy(save, async () => {
      say(status, "Saving…");
      try {
        const { data } = await adminApi<AdminProduct>(
          "PATCH",
          `/admin/products/${encodeURIComponent(product.id)}`,
          {
            body: patch,
          },
        );
        item.replaceWith(renderProduct(data, "Saved"));
      } catch (error) {
        if (error instanceof ApiProblem && error.code === "sellable_below_committed") {
          const committed = Number(error.problem.committed ?? product.reserved + product.sold);
          sellable.setAttribute("aria-invalid", "true");
          sellable.focus();
          say(status, `Units for sale cannot go below ${committed}: that many are reserved or sold`, "error");
          return;
        }
        say(status, errorText(error), "error");
      }
    });
  });
  if (message) say(status, message, "ok");
  return item;
}

export function setupProducts(): void {
  const list = new PagedList<AdminProduct>({
    path: "/admin/products",
    key: "products",
    list: byId("products"),
    more: byId<HTMLButtonElement>("products-more"),
    status: byId("products-status"),
    empty: "No products yet: create the first below “New product”.",
    render: (product) => renderProduct(product),
  });
  onTabOpen("products", () => void list.reload());
  byId("products-refresh").addEventListener(
    "click",
    (event) => void busy(event.currentTarget as HTMLButtonElement, () => list.reload()),
  );

  byId("product-venue-region").append(...regionOptions(null));
  const form = byId<HTMLFormElement>("product-form");
  const status = byId("product-form-status");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const cents = priceCents(String(data.get("price") ?? ""));
    if (cents === undefined) return say(status, "The price is not an amount, like 25.00", "error");
    const functions = parseFunctions(String(data.get("functions") ?? ""));
    if (typeof functions === "string") return say(status, functions, "error");
    void busy(byId<HTMLButtonElement>("product-create"), async () => {
      say(status, "Creating…");
      try {
        const { data: created } = await adminApi<AdminProduct>("POST", "/admin/products", {
          body: {
            name: String(data.get("name") ?? "").trim(),
            description: String(data.get("description") ?? "").trim(),
            price_cents: cents,
            sellable: Number(data.get("sellable")),
            functions,
            venue_region: String(data.get("venue_region") ?? "") || null,
          },
        });
        form.reset();
        say(status, `Created ${created.name}`, "ok");
        byId("products").prepend(renderProduct(created, "Created"));
        say(byId("products-status"), "");
      } catch (error) {
        say(status, errorText(error), "error");
      }
    });
  });
}
