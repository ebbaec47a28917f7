import { byId, show } from "../lib/dom";

// The page's six sections, one at a time on a phone. Each has an address (`/admin#devices`), so a reload
// or a shared link lands on the same section; opening a section reads its data again.

export const TABS = ["products", "staff", "devices", "payments", "audit", "dead-letters"] as const;
export type Tab = (typeof TABS)[number];

const loaders = new Map<Tab, () => void>();
let current: Tab = "products";

export function onTabOpen(tab: Tab, loader: () => void): void {
  loaders.set(tab, loader);
}

function tabFromHash(): Tab | undefined {
  return TABS.find((tab) => `#${tab}` === location.hash.toLowerCase());
}

export function openTab(tab: Tab): void {
  current = tab;
  for (const button of document.querySelectorAll<HTMLButtonElement>("nav.tabs button")) {
    if (button.dataset.tab === tab) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const name of TABS) show(byId(`tab-${name}`), name === tab);
  if (location.hash !== `#${tab}`) history.replaceState(null, "", `${location.pathname}#${tab}`);
  loaders.get(tab)?.();
}

/** Opens the section the address names (or the one open before), as after signing in. */
export function openCurrentTab(): void {
  openTab(tabFromHash() ?? current);
}

export function setupTabs(): void {
  for (const button of document.querySelectorAll<HTMLButtonElement>("nav.tabs button")) {
    button.addEventListener("click", () => openTab(button.dataset.tab as Tab));
  }
  addEventListener("hashchange", () => {
    const tab = tabFromHash();
    if (tab && tab !== current) openTab(tab);
  });
}
