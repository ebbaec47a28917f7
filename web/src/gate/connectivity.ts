// Whether the gate can count on the server right now. The browser's own flag catches a phone with no
// signal at once; a connection that is up but answers nothing (a dead uplink, a captive portal) is only
// found by a request that failed, and it stays "down" until a request is answered again, so the scans
// in between are decided offline at once instead of each waiting for its own time-out.

export interface Connectivity {
  usable(): boolean;
  /** A request got no answer at all. */
  reportNoAnswer(): void;
  /** The server answered (whatever it said). */
  reportAnswer(): void;
  /** Called on every change, and when the browser says the network is back (worth trying at once). */
  onChange(listener: () => void): void;
}

export function createConnectivity(): Connectivity {
  let unanswered = false;
  const listeners: (() => void)[] = [];

  function changed(): void {
    for (const listener of listeners) listener();
  }

  window.addEventListener("online", () => {
    // The network the browser sees is new: give it the benefit of the doubt until a request fails.
    unanswered = false;
    changed();
  });
  window.addEventListener("offline", changed);

  return {
    usable: () => navigator.onLine && !unanswered,
    reportNoAnswer() {
      if (unanswered) return;
      unanswered = true;
      changed();
    },
    reportAnswer() {
      if (!unanswered) return;
      unanswered = false;
      changed();
    },
    onChange(listener) {
      listeners.push(listener);
    },
  };
}
