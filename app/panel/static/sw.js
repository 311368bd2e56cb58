// The room panel's service worker: keeps the panel's files on the device.
//
// Network first: with the master reachable every visit gets the current files (they are
// revalidated, so a 304 costs a few bytes) and refreshes this cache; when the master does
// not answer — down, or silent for NETWORK_TIMEOUT_MS — the cached copy is served, so the
// panel still opens and finds its room on an edge. Only the panel's own GETs are handled;
// its API calls and its websocket go straight to the network.
"use strict";

const CACHE = "engine-panel";
const SHELL = [
  "/panel/",
  "/panel/panel.js",
  "/panel/panel.css",
  "/panel/manifest.webmanifest",
  "/panel/icon.svg",
  "/panel/icon-192.png",
  "/panel/icon-512.png",
];
const NETWORK_TIMEOUT_MS = 3000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((path) => new Request(path, { cache: "no-cache" }))))
      .then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!SHELL.includes(url.pathname)) return;
  event.respondWith(networkFirst(request, url.pathname));
});

// The page is one file whatever its query (?system=…): it is cached under its path.
async function networkFirst(request, path) {
  const cache = await caches.open(CACHE);
  const fetched = fetch(request).then(async (response) => {
    if (response.ok) await cache.put(path, response.clone());
    return response;
  });
  fetched.catch(() => undefined); // a late failure after the cache answered is no error
  try {
    return await Promise.race([fetched, timeout(NETWORK_TIMEOUT_MS)]);
  } catch (error) {
    const cached = await cache.match(path);
    if (cached) return cached;
    return fetched; // nothing cached: the browser reports the network's failure
  }
}

function timeout(ms) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error("no answer")), ms));
}
