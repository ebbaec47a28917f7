import { api } from "../lib/api";
import { h, render } from "../lib/dom";

// What this gate validates. A device registered with functions (a pier gate: ferry) offers only those and
// starts on its first; a device for every function offers the catalog's. The operator's last pick is
// remembered on this phone and kept when it is still offered.

const FUNCTION_KEY = "passes.gate.function";

/** The catalog's functions, sorted: what a device for every function may validate. */
async function catalogFunctions(): Promise<string[]> {
  const { data } = await api<{ products: { functions: { function: string }[] }[] }>("GET", "/catalog");
  return [...new Set(data.products.flatMap((product) => product.functions.map((f) => f.function)))].sort();
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
