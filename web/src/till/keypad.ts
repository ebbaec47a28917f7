import { byId, h, render } from "../lib/dom";
import { money, parseAmountCents } from "../lib/format";

// The amount: a big keypad and preset amounts, so a phone's own keyboard never covers the till. The field
// still takes typing (a till with a real keyboard, or a paste): `inputmode="none"` only keeps the on-screen
// keyboard away.

/** Prices a venue's bar sells most: one tap each. */
export const PRESET_AMOUNTS_CENTS = [250, 450, 500, 1_000] as const;
/** What the API takes (parseAmountCents): up to 7 digits of whole units and 2 of cents. */
const AMOUNT_PATTERN = /^\d{0,7}(?:[.,]\d{0,2})?$/;
const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", ".", "0", "⌫"] as const;

export interface Keypad {
  amountCents(): number | undefined;
  clear(): void;
}

/** The text a key press makes of `current`, or `current` unchanged when the key would make it invalid. */
export function pressKey(current: string, key: string): string {
  if (key === "⌫") return current.slice(0, -1);
  if (key === ".") {
    if (/[.,]/.test(current)) return current;
    return `${current || "0"}.`;
  }
  // A leading zero is replaced rather than kept ("05" is never shown).
  const next = current === "0" ? key : current + key;
  return AMOUNT_PATTERN.test(next) ? next : current;
}

export function setupKeypad(onChange: (amountCents: number | undefined) => void): Keypad {
  const input = byId<HTMLInputElement>("amount");
  const changed = () => onChange(parseAmountCents(input.value));
  const set = (text: string) => {
    input.value = text;
    changed();
  };

  render(
    byId("presets"),
    ...PRESET_AMOUNTS_CENTS.map((cents) =>
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => set((cents / 100).toFixed(2)),
        },
        money(cents),
      ),
    ),
  );
  render(
    byId("keypad"),
    ...KEYS.map((key) =>
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          "aria-label": key === "⌫" ? "Delete last digit" : key === "." ? "Decimal point" : undefined,
          onclick: () => set(pressKey(input.value, key)),
        },
        key,
      ),
    ),
  );
  byId("amount-clear").addEventListener("click", () => set(""));
  input.addEventListener("input", changed);

  return {
    amountCents: () => parseAmountCents(input.value),
    clear: () => set(""),
  };
}
