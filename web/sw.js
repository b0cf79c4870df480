// carkey web key — the service worker: the page and its modules come from this cache, so it opens offline.
// SPDX-License-Identifier: MIT
//
// Cache first for the app shell; a new version of this file (CACHE name) replaces the
// cache when the browser installs it. The /air tunnel and its config are never cached.

const CACHE = 'carkey-web-v1';
const SHELL = [
  './', 'index.html', 'app.js', 'style.css', 'manifest.webmanifest', 'icon.svg',
  'lib/air_bluetooth.js', 'lib/apdu.js', 'lib/bytes.js', 'lib/channel.js', 'lib/crypto.js', 'lib/envelope.js',
  'lib/frame.js', 'lib/keyring.js', 'lib/kpersistent.js', 'lib/pem.js', 'lib/phone.js', 'lib/qr.js', 'lib/share.js',
  'lib/store.js', 'lib/tlv.js', 'lib/user_device.js', 'lib/webble.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || url.pathname.endsWith('/air') ||
      url.pathname.endsWith('/air-config.json')) return;
  event.respondWith(caches.match(event.request, { ignoreSearch: true }).then((hit) => hit || fetch(event.request)));
});
