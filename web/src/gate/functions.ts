import { api, NetworkError } from "../lib/api";
import { h, render } from "../lib/dom";
import { answerWithin } from "./deadline";

// What this gate validates. A device registered with functions (a pier gate: ferry) offers only those and
// starts on its first; a device for every function offers the catalog's. The operator's last pick is
// remembered on this phone and kept when it is still offered, and so is the catalog's list, so a gate
// reloaded offline still offers its functions.

const FUNCTION_KEY = "passes.gate.function";
const CATALOG_FUNCTIONS_KEY = "passes.gate.catalog-functions";
/** Past this, a network that answers nothing is taken as none, and the kept list is offered. */
const CATALOG_TIMEOUT_MS = 5_000;

/**
 * The catalog's functions, sorted: what a device for every function may validate. Without a network, the
 * list kept from the last time it was read.
 */
async function catalogFunctions(): Promise<string[]> {
  const kept = keptCatalogFunctions();
  if (kept && !navigator.onLine) return kept;
  try {
    const { data } = await answerWithin(
      api<{ products: { functions: { function: string }[] }[] }>("GET", "/catalog"),
      CATALOG_TIMEOUT_MS,
    );
    const names = [
      ...new Set(data.products.flatMap((product) => product.functions.map((f) => f.function))),
    ].sort();
    localStorage.setItem(CATALOG_FUNCTIONS_KEY, JSON.stringify(names));
    return names;
  } catch (error) {
    if (error instanceof NetworkError && kept) return kept;
    throw error;
  }
}

function keptCatalogFunctions(): string[] | undefined {
  try {
    const kept: unknown = JSON.parse(localStorage.getItem(CATALOG_FUNCTIONS_KEY) ?? "null");
    return Array.isArray(kept) && kept.every((name) => typeof name === "string") ? kept : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Fills `select` for a session whose device has `deviceFunctions` (`null`: every function). Rejects when
 * the catalog cannot be read.
 */
export async function offerFunctions(
  select: HTMLSelectElement,
  deviceFunctions: string[] | null,
): Promise<void> {
  const names = deviceFunctions && deviceFunctions.length > 0 ? deviceFunctions : await catalogFunctions();
  render(select, ...names.map((name) => h("option", { value: name }, name)));
  const remembered = localStorage.getItem(FUNCTION_KEY);
  select.value = remembered && names.includes(remembered) ? remembered : (names[0] ?? "");
}

export function rememberFunction(fn: string): void {
  localStorage.setItem(FUNCTION_KEY, fn);
}
