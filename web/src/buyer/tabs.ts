import { byId, show } from "../lib/dom";

// The app's four sections. Each has an address (`/#wallet` is the tills' top-up link), so a link, a
// reload or the back button lands on the same section.

export type Tab = "catalog" | "orders" | "tickets" | "wallet";

const TABS: readonly Tab[] = ["catalog", "orders", "tickets", "wallet"];
const HASHES: Record<Tab, string> = {
  catalog: "#buy",
  orders: "#orders",
  tickets: "#tickets",
  wallet: "#wallet",
};

const loaders = new Map<Tab, () => void>();

/** What a section does each time it is opened (usually: read its data again). */
export function onTabOpen(tab: Tab, loader: () => void): void {
  loaders.set(tab, loader);
}

/** The section a URL fragment names, if any. */
export function tabFromHash(hash: string = location.hash): Tab | undefined {
  return TABS.find((tab) => HASHES[tab] === hash.toLowerCase());
}

export function openTab(tab: Tab, options: { updateAddress?: boolean } = {}): void {
  for (const button of document.querySelectorAll<HTMLButtonElement>("nav.tabs button")) {
    if (button.dataset.tab === tab) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const name of TABS) show(byId(`tab-${name}`), name === tab);
  if (options.updateAddress !== false && location.hash !== HASHES[tab]) {
    history.replaceState(null, "", `${location.pathname}${location.search}${HASHES[tab]}`);
  }
  loaders.get(tab)?.();
}

for (const button of document.querySelectorAll<HTMLButtonElement>("nav.tabs button")) {
  button.addEventListener("click", () => openTab(button.dataset.tab as Tab));
}
