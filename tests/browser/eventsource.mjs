// A real browser's EventSource against sluice: headless Debian Chromium,
// driven by playwright-core (no browser download). Run by tests/it/browser.rs
// with SLUICE_STREAM_URL and SLUICE_PAGE_URL set; prints one JSON line with
// what the page saw.
//
// The page never calls es.close(): after the `done` frame the server ends
// the response, the browser reconnects with Last-Event-ID, and sluice's 204
// must make it stop (readyState CLOSED).
import { chromium } from "playwright-core";

const url = process.env.SLUICE_STREAM_URL;
if (!url) throw new Error("SLUICE_STREAM_URL is not set");
// The page the EventSource runs in: a loopback origin, which sluice's
// default cors.allow_origins lets call it (about:blank's origin is opaque).
const pageUrl = process.env.SLUICE_PAGE_URL;
if (!pageUrl) throw new Error("SLUICE_PAGE_URL is not set");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // As the machine notes say: no background networking (this machine's
  // network is closed), a fresh profile, no sandbox as root.
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  const foreign = [];
  page.on("request", (request) => {
    const { protocol, hostname } = new URL(request.url());
    if (protocol.startsWith("http") && hostname !== "127.0.0.1") foreign.push(request.url());
  });
  await page.goto(pageUrl);
  const seen = await page.evaluate(
    (url) =>
      new Promise((resolve) => {
        const tokens = [];
        const ids = [];
        const errors = [];
        let opens = 0;
        let done = null;
        const es = new EventSource(url);
        es.onopen = () => { opens += 1; };
        es.onmessage = (e) => {
          tokens.push(JSON.parse(e.data).token);
          ids.push(e.lastEventId);
        };
        es.addEventListener("done", (e) => { done = { data: JSON.parse(e.data), id: e.lastEventId }; });
        es.addEventListener("error", (e) => { if (e.data) errors.push(e.data); });
        const started = Date.now();
        const poll = setInterval(() => {
          const closed = es.readyState === EventSource.CLOSED;
          if (closed || Date.now() - started > 30000) {
            clearInterval(poll);
            es.close();
            resolve({ tokens, ids, opens, done, errors, closed, ms: Date.now() - started });
          }
        }, 50);
      }),
    url,
  );
  console.log(JSON.stringify({ ...seen, foreign }));
} finally {
  await browser.close();
}
