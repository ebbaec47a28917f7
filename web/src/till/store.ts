// The till keeps what must survive a reload of the tab (an unanswered charge, a refund being retried,
// sales the server has not listed yet) in sessionStorage, like the staff session: gone when the tab closes.

export function readJson<T>(key: string): T | null {
  try {
    return JSON.parse(sessionStorage.getItem(key) ?? "null") as T | null;
  } catch {
    return null;
  }
}

export function writeJson(key: string, value: unknown): void {
  if (value === null) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, JSON.stringify(value));
}
