/// <reference lib="webworker" />

// The gate's service worker (/gate-sw.js, controlling /gate): the page and its assets come from the
// network while it answers, and from the cache when it does not, so a gate reloaded without signal still
// opens and decides offline. API requests are never touched: every answer about a ticket is the server's
// or the page's own offline rule, never a stale copy.

// The page's DOM types are in the same program: this module's own `self` is the worker's scope.
declare const self: ServiceWorkerGlobalScope;
/** Written by scripts/build-web.mjs: a hash of what is precached, and the URLs (the page, its bundle, …). */
declare const __GATE_SHELL__: { version: string; urls: string[] };

const CACHE_PREFIX = "passes-gate-";
const CACHE_NAME = `${CACHE_PREFIX}${__GATE_SHELL__.version}`;
const GATE_PAGE = "/gate";
/** A gate on a bad connection should not wait longer than this for the page before the cached copy shows. */
const NETWORK_TIMEOUT_MS = 3_000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE_NAME);
      // `reload` skips the HTTP cache, so the copy kept is the one this version was built with.
      await cache.addAll(__GATE_SHELL__.urls.map((url) => new Request(url, { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE_NAME) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const key = cacheKey(event.request);
  if (key) event.respondWith(networkFirst(event, key));
});

/** The cache key of a request this worker serves (the page, or a file under /assets/); undefined for the rest. */
function cacheKey(request: Request): string | undefined {
  if (request.method !== "GET") return undefined;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return undefined;
  // The page is one entry, whatever query it is opened with.
  if (request.mode === "navigate" && url.pathname === GATE_PAGE) return GATE_PAGE;
  if (url.pathname.startsWith("/assets/")) return url.pathname;
  return undefined;
}

async function networkFirst(event: FetchEvent, key: string): Promise<Response> {
  const fromNetwork = fetch(event.request).then((response) => {
    // A redirected response cannot answer a navigation, and an error page is not worth keeping.
    if (response.ok && !response.redirected) {
      const copy = response.clone();
      event.waitUntil(caches.open(CACHE_NAME).then((cache) => cache.put(key, copy)));
    }
    return response;
  });
  // Settled on every path, so a late failure after a cache hit is not an unhandled rejection.
  const answered = fromNetwork.then(
    (response) => response,
    () => undefined,
  );
  const timedOut = new Promise<undefined>((resolve) => setTimeout(resolve, NETWORK_TIMEOUT_MS, undefined));
  const first = await Promise.race([answered, timedOut]);
  if (first?.ok) return first;
  const cached = await caches.match(key);
  // Nothing cached yet: the network's answer (or its error, or its late answer) is all there is.
  return cached ?? first ?? fromNetwork;
}

export {};
