// Keeps the phone's screen on while a QR code is shown: a gate or a till must be able to read it without
// the buyer tapping the phone awake. The browser drops the lock whenever the page is hidden, so it is
// asked for again when the page comes back. Without the API (or when refused, say on low battery) the
// code still shows; the screen may just dim.

let wanted = false;
let sentinel: WakeLockSentinel | null = null;
/** A request on its way: a second one would leave one lock that nobody releases. */
let requesting = false;

async function acquire(): Promise<void> {
  if (!wanted || sentinel || requesting || !("wakeLock" in navigator)) return;
  if (document.visibilityState !== "visible") return;
  requesting = true;
  try {
    const lock = await navigator.wakeLock.request("screen");
    if (!wanted) {
      await lock.release();
      return;
    }
    sentinel = lock;
    lock.addEventListener("release", () => {
      if (sentinel === lock) sentinel = null;
    });
  } catch {
    // Refused: nothing to undo, and nothing the buyer could do about it.
  } finally {
    requesting = false;
  }
}

/** Holds the screen on until `letScreenSleep`, across the page being hidden and shown again. */
export function keepScreenOn(): void {
  wanted = true;
  void acquire();
}

export function letScreenSleep(): void {
  wanted = false;
  const lock = sentinel;
  sentinel = null;
  void lock?.release().catch(() => undefined);
}

document.addEventListener("visibilitychange", () => void acquire());
