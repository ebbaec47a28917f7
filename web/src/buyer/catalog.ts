import { api } from "../lib/api";
import { byId, h, render, say, show } from "../lib/dom";
import { describeError, money } from "../lib/format";
import { beginCheckout } from "./checkout";
import { knownProducts, onOrdersChanged } from "./common";
import type { Product } from "./types";

// What is for sale: compact cards, several to a screen, and a search box that keeps a hundred products
// usable. A card's own mistakes (a quantity out of range) are said on that card, next to its button.

/** At most this many of one product per order (the API's per-item limit). */
const MAX_QUANTITY = 20;

const list = byId<HTMLUListElement>("products");
const search = byId<HTMLInputElement>("catalog-search");
let products: Product[] = [];
/** Quantities typed but not bought yet survive a reload of the list (after an order, say). */
const typedQuantities = new Map<string, string>();

export async function loadCatalog(): Promise<void> {
  const status = byId("catalog-status");
  try {
    const { data } = await api<{ products: Product[] }>("GET", "/catalog");
    products = data.products;
    for (const product of products) knownProducts.set(product.id, product);
    render(list, ...products.map(productCard));
    applySearch();
    if (status.dataset.kind === "error") say(status, "");
  } catch (error) {
    say(status, `Could not load the catalog: ${describeError(error)}`, "error");
  }
}

/** Every word typed must appear in the product's name, description or functions. */
function matches(product: Product, words: string[]): boolean {
  const text = [product.name, product.description, ...product.functions.map((f) => f.function)]
    .join(" ")
    .toLowerCase();
  return words.every((word) => text.includes(word));
}

function applySearch(): void {
  const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const card of list.children) {
    const product = knownProducts.get((card as HTMLElement).dataset.product ?? "");
    const visible = product !== undefined && matches(product, words);
    show(card as HTMLElement, visible);
    if (visible) shown += 1;
  }
  const count = byId("catalog-count");
  count.textContent = words.length > 0 ? `${shown} of ${products.length}` : "";
  const status = byId("catalog-status");
  if (status.dataset.kind === "error") return;
  if (products.length === 0) say(status, "Nothing is for sale right now.");
  else if (shown === 0) say(status, `No passes match “${search.value.trim()}”.`);
  else say(status, "");
}

search.addEventListener("input", applySearch);
// An order took or gave back stock.
onOrdersChanged(() => void loadCatalog());

function productCard(product: Product): HTMLLIElement {
  const quantityId = `quantity-${product.id}`;
  const errorId = `quantity-error-${product.id}`;
  const soldOut = product.available <= 0;
  const quantity = h("input", {
    id: quantityId,
    type: "number",
    min: 1,
    max: Math.max(1, Math.min(MAX_QUANTITY, product.available)),
    value: typedQuantities.get(product.id) ?? 1,
    inputmode: "numeric",
    disabled: soldOut,
    "aria-describedby": errorId,
  });
  const error = h("p", { id: errorId, class: "field-error", role: "alert" });
  quantity.addEventListener("input", () => {
    typedQuantities.set(product.id, quantity.value);
    if (error.textContent) setError("");
  });
  const setError = (text: string) => {
    error.textContent = text;
    if (!text) {
      quantity.removeAttribute("aria-invalid");
      return;
    }
    quantity.setAttribute("aria-invalid", "true");
    // The card may sit at the screen's bottom edge: bring the message up with it.
    error.scrollIntoView({ block: "nearest" });
  };
  const buy = () => {
    const wanted = Number(quantity.value);
    if (!Number.isInteger(wanted) || wanted < 1 || wanted > MAX_QUANTITY) {
      setError(`Choose a quantity from 1 to ${MAX_QUANTITY}`);
      quantity.focus();
      return;
    }
    if (wanted > product.available) {
      setError(`Only ${product.available} left`);
      quantity.focus();
      return;
    }
    setError("");
    typedQuantities.delete(product.id);
    void beginCheckout(product, wanted);
  };
  const uses = product.functions.map((f) => `${f.function} ×${f.uses}`).join(" · ");
  return h(
    "li",
    { class: "card product", "data-product": product.id },
    h("h3", {}, product.name),
    h("p", { class: "price" }, money(product.price_cents, product.currency)),
    product.description
      ? h("p", { class: "description muted", title: product.description }, product.description)
      : null,
    uses ? h("p", { class: "uses muted" }, uses) : null,
    h(
      "div",
      { class: "buy" },
      h(
        "span",
        { class: soldOut ? "left none" : "left" },
        soldOut ? "Sold out" : `${product.available} left`,
      ),
      h("label", { for: quantityId }, "Qty"),
      quantity,
      h(
        "button",
        { type: "button", disabled: soldOut, "aria-label": `Buy ${product.name}`, onclick: buy },
        "Buy",
      ),
    ),
    error,
  );
}
