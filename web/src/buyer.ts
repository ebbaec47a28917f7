import { loadCatalog } from "./buyer/catalog";
import { resetCheckout, restoreCheckout } from "./buyer/checkout";
import { showCheckoutReturn, takeCheckoutReturn } from "./buyer/hosted-payment";
import { forgetOfflineCodes } from "./buyer/offline-codes";
import { loadOrders, refreshPendingOrders, resetOrders } from "./buyer/orders";
import { closeQr } from "./buyer/qr-screen";
import { onSignIn, onSignOut, signedIn } from "./buyer/session";
import { startSession } from "./buyer/signin";
import { onTabOpen, openTab, tabFromHash } from "./buyer/tabs";
import { loadTickets } from "./buyer/tickets";
import { loadWallet, renderTopupAttempt, resetWallet } from "./buyer/wallet";

// `/`: the buyer app. Sign in, buy passes (by card, with credits, or both), keep track of orders, show a
// rotating QR per ticket at the gates, and keep a credit wallet whose QR pays at the tills. Everything
// goes through the public API with the buyer's bearer token. This file only wires the features in
// ./buyer/ together; each of them is one part of the page.

onTabOpen("catalog", () => void loadCatalog());
onTabOpen("orders", () => {
  void loadOrders();
  void refreshPendingOrders();
});
onTabOpen("tickets", () => void loadTickets());
onTabOpen("wallet", () => void loadWallet());

// Read before anything touches the address: the provider's page sends the buyer back with it.
let checkoutReturn = takeCheckoutReturn();

onSignIn(() => {
  // A link can name the section to open: the tills' top-up link is `/#wallet`.
  const tab = tabFromHash() ?? "catalog";
  openTab(tab, { updateAddress: false });
  // Orders and checkout name products by the catalog's names, whichever section opened first.
  if (tab !== "catalog") void loadCatalog();
  void refreshPendingOrders();
  // A top-up paid on the provider's page is no longer waiting here.
  if (checkoutReturn?.result === "success" && checkoutReturn.reference.startsWith("top_")) resetWallet();
  restoreCheckout();
  renderTopupAttempt();
  if (checkoutReturn) {
    void showCheckoutReturn(checkoutReturn);
    checkoutReturn = null;
  }
});

onSignOut(() => {
  closeQr();
  void forgetOfflineCodes();
  resetCheckout();
  resetOrders();
  resetWallet();
});

window.addEventListener("hashchange", () => {
  const tab = tabFromHash();
  if (tab && signedIn()) openTab(tab, { updateAddress: false });
});

startSession();
