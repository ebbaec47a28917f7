import { byId, say, show } from "../lib/dom";
import { money, parseAmountCents } from "../lib/format";

// How to pay for an order, offered when the wallet has credit: by card, with credits alone (when they
// cover the total), or with some credits and the rest by card. A wrong amount is said under its field.

const form = byId<HTMLFormElement>("pay-form");
const creditsField = byId<HTMLInputElement>("credits-amount");
const creditsError = byId("credits-error");

interface Offer {
  total_cents: number;
  currency: string;
  available_cents: number;
}

let offer: Offer | null = null;
let chosenHandler: (creditsCents: number | undefined) => void = () => undefined;

/** What to do with the buyer's choice: the credits to apply (undefined: card only). */
export function onPayChoice(handler: (creditsCents: number | undefined) => void): void {
  chosenHandler = handler;
}

export function offerCredits(next: Offer): void {
  offer = next;
  const { total_cents: total, currency, available_cents: available } = next;
  const covers = available >= total;
  byId<HTMLInputElement>("pay-credits").disabled = !covers;
  byId("pay-credits-text").textContent = covers
    ? `Credits only · ${money(total, currency)} of ${money(available, currency)}`
    : `Credits only · you have ${money(available, currency)}`;
  byId("credits-available").textContent = `${money(available, currency)} of credit available.`;
  const choice = covers ? "credits" : "card";
  for (const radio of form.querySelectorAll<HTMLInputElement>("input[name=pay-with]")) {
    radio.checked = radio.value === choice;
  }
  // A split leaves at least a cent for the card; the whole total is "Credits only".
  creditsField.value = (Math.min(available, total - 1) / 100).toFixed(2);
  showCreditsError("");
  syncChoice();
  show(form, true);
}

export function hidePayChoice(): void {
  show(form, false);
}

export function showCreditsError(text: string): void {
  say(creditsError, text, "error");
  if (text) creditsField.setAttribute("aria-invalid", "true");
  else creditsField.removeAttribute("aria-invalid");
}

function chosen(): string {
  return form.querySelector<HTMLInputElement>("input[name=pay-with]:checked")?.value ?? "card";
}

function syncChoice(): void {
  show(byId("split-amount"), chosen() === "split");
}

form.addEventListener("change", syncChoice);
creditsField.addEventListener("input", () => showCreditsError(""));

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!offer) return;
  const pick = chosen();
  if (pick === "card") return chosenHandler(undefined);
  if (pick === "credits") return chosenHandler(offer.total_cents);
  const cents = parseAmountCents(creditsField.value);
  const max = Math.min(offer.available_cents, offer.total_cents);
  if (cents === undefined) showCreditsError("Enter an amount such as 10 or 12.50");
  else if (cents > max) showCreditsError(`At most ${money(max, offer.currency)}`);
  else return chosenHandler(cents);
  creditsField.focus();
});
