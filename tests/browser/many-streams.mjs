// Headless Chromium over TLS (a certificate made by the test, so
// --ignore-certificate-errors) holding 12 EventSources to one origin at once.
// Over HTTP/1.1 a browser opens at most six connections per origin, so the
// seventh stream would wait for one to end; over HTTP/2 all run together.
// Run by tests/it/http2_browser.rs with SLUICE_BASE (https://...) set.
import { chromium } from "playwright-core";

const base = process.env.SLUICE_BASE;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--ignore-certificate-errors",
  ],
});
try {
  const page = await browser.newPage({ ignoreHTTPSErrors: true });
  await page.goto(base + "/");
  const seen = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const protocol = performance.getEntriesByType("navigation")[0].nextHopProtocol;
        const t0 = performance.now();
        const streams = Array.from({ length: 12 }, (_, i) => ({ i, first: null, done: null, tokens: 0 }));
        for (const s of streams) {
          const es = new EventSource(`/v1/stream?prompt=stream+${s.i}&mock_tokens=15&mock_ttft_ms=0&mock_token_delay_ms=100`);
          es.onmessage = () => { s.tokens += 1; if (s.first === null) s.first = performance.now() - t0; };
          es.addEventListener("done", () => {
            s.done = performance.now() - t0;
            es.close();
            if (streams.every((x) => x.done !== null)) resolve({ protocol, streams });
          });
        }
        setTimeout(() => resolve({ protocol, streams, timedOut: true }), 30000);
      }),
  );
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
