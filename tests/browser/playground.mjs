// The playground page (contract section 9) in headless Debian Chromium,
// driven by playwright-core. Run by tests/it/playground.rs with SLUICE_BASE
// (a sluice with the mock), SLUICE_AUTH_BASE (one with auth on, key
// "play-key") and SCREENSHOTS (a folder) set. Prints one JSON line with what
// each scenario saw; tests/it/playground.rs judges it.
import { chromium } from "playwright-core";

const base = process.env.SLUICE_BASE;
const authBase = process.env.SLUICE_AUTH_BASE;
const shots = process.env.SCREENSHOTS;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const results = {};
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  const foreign = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol.startsWith("http") && url.hostname !== "127.0.0.1") foreign.push(request.url());
  });
  const text = (id) => page.$eval("#" + id, (e) => e.textContent);
  const state = async () => ({
    status: await text("status"), output: await text("output"),
    tokens: Number(await text("tokens")), ttft: await text("ttft"),
  });
  const knobs = async (values) => {
    for (const knob of ["ttft_ms", "token_delay_ms", "fail_after", "drop_after", "error_status", "reasoning_tokens"]) {
      await page.fill("#mock-" + knob, values[knob] === undefined ? "" : String(values[knob]));
    }
  };
  const settled = () => page.waitForFunction(
    () => !["idle", "streaming"].includes(document.getElementById("status").textContent), null, { timeout: 20000 });

  // Loads, with the models listed.
  await page.goto(base + "/");
  await page.waitForFunction(() => document.getElementById("model").options.length > 0);
  results.load = {
    status: await text("status"),
    models: await page.$$eval("#model option", (os) => os.map((o) => o.value)),
    ttftShown: await page.$eval("#ttft-box", (e) => !e.hidden),
    favicon: await page.$eval("link[rel=icon]", (e) => e.href.startsWith("data:image/png")),
    // The Markdown renderer, and what it makes of markup in an answer.
    markdown: await page.evaluate(() => markdown("# Rivers\n\n- **long** and `wide`\n- [docs](https://example.com)\n\n```\nx < 1\n```")),
    hostile: await page.evaluate(() => markdown("<img src=x onerror=alert(1)> [x](javascript:alert(1))")),
  };
  await page.screenshot({ path: `${shots}/idle.png` });

  // Send: the answer streams into #output, growing as it goes.
  await page.fill("#prompt", "Tell me about rivers.");
  await knobs({ ttft_ms: 0, token_delay_ms: 25 });
  await page.click("#send");
  const lengths = [];
  const sampler = setInterval(async () => {
    try { lengths.push((await text("output")).length); } catch { /* the page is busy */ }
  }, 60);
  await page.waitForFunction(() => Number(document.getElementById("tokens").textContent) >= 10);
  await page.screenshot({ path: `${shots}/streaming.png` });
  await settled();
  clearInterval(sampler);
  results.send = {
    ...(await state()),
    lengths,
    rendered: await page.$eval("#rendered", (e) => e.innerText),
    renderedShown: await page.$eval("#rendered", (e) => !e.hidden && e.getBoundingClientRect().height > 0),
    rawShown: await page.$eval("#output", (e) => !e.hidden),
  };
  // The raw toggle shows the exact tokens instead.
  await page.check("#raw");
  results.send.rawToggled = {
    rawShown: await page.$eval("#output", (e) => !e.hidden),
    renderedShown: await page.$eval("#rendered", (e) => !e.hidden),
  };
  await page.screenshot({ path: `${shots}/raw.png` });
  await page.uncheck("#raw");
  await page.screenshot({ path: `${shots}/done.png` });

  // Stop: cancelled, and no more tokens come.
  await knobs({ ttft_ms: 0, token_delay_ms: 150 });
  await page.click("#send");
  await page.waitForFunction(() => Number(document.getElementById("tokens").textContent) >= 3);
  await page.keyboard.press("Escape");
  await settled();
  const stopped = await state();
  await page.waitForTimeout(800);
  results.stop = { ...stopped, tokensLater: Number(await text("tokens")) };
  await page.screenshot({ path: `${shots}/cancelled.png` });

  // The mock told to answer 429.
  await knobs({ ttft_ms: 0, token_delay_ms: 0, error_status: 429 });
  await page.click("#send");
  await settled();
  results.rateLimited = {
    ...(await state()),
    errorShown: await page.$eval("#answer-error", (e) => !e.hidden),
    errorText: await text("answer-error"),
  };
  await page.screenshot({ path: `${shots}/error-429.png` });

  // The mock told to fail after 3 tokens; sent with Ctrl+Enter.
  await knobs({ ttft_ms: 0, token_delay_ms: 10, fail_after: 3 });
  await page.focus("#prompt");
  await page.keyboard.press("Control+Enter");
  await settled();
  results.failAfter = {
    ...(await state()),
    errorShown: await page.$eval("#answer-error", (e) => !e.hidden),
    errorText: await text("answer-error"),
  };
  await page.screenshot({ path: `${shots}/error-fail-after.png` });

  // A fault by name: a broken frame after 2 tokens is shown and skipped,
  // and the answer goes on to its end.
  await knobs({ ttft_ms: 0, token_delay_ms: 10 });
  await page.selectOption("#mock-fault", "malformed");
  await page.fill("#mock-fault_after", "2");
  await page.click("#send");
  await settled();
  results.malformed = {
    ...(await state()),
    frames: await page.$$eval("#frames tr", (rows) => rows.map((r) => r.cells[3].textContent)),
  };
  await page.selectOption("#mock-fault", "");
  await page.fill("#mock-fault_after", "");

  // Pause holds the answer still, Step lets one token through, a second
  // Pause (now "Resume") lets the rest go.
  await knobs({ ttft_ms: 0, token_delay_ms: 80 });
  await page.click("#send");
  await page.waitForFunction(() => Number(document.getElementById("tokens").textContent) >= 3);
  await page.click("#pause");
  await page.waitForFunction(() => document.getElementById("status").textContent === "paused");
  await page.waitForTimeout(400);
  const held = Number(await text("tokens"));
  await page.waitForTimeout(800);
  const stillHeld = Number(await text("tokens"));
  await page.screenshot({ path: `${shots}/paused.png` });
  await page.click("#step");
  await page.waitForTimeout(600);
  const stepped = Number(await text("tokens"));
  await page.click("#pause");
  await page.waitForFunction(() => document.getElementById("status").textContent !== "paused");
  await settled();
  results.pause = { held, stillHeld, stepped, ...(await state()) };

  // Reasoning: its own box, apart from the answer.
  await knobs({ ttft_ms: 0, token_delay_ms: 5, reasoning_tokens: 12 });
  await page.click("#send");
  await settled();
  results.reasoning = {
    ...(await state()),
    thinking: await text("thinking"),
    boxShown: await page.$eval("#thinking-box", (e) => !e.hidden),
  };
  await page.screenshot({ path: `${shots}/reasoning.png` });

  // 360 px wide: nothing wider than the screen.
  await page.setViewportSize({ width: 360, height: 740 });
  results.narrow = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: `${shots}/narrow.png`, fullPage: true });
  await page.setViewportSize({ width: 1100, height: 800 });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: `${shots}/dark.png` });

  // Auth on: no models without the key; with it, a whole answer.
  const auth = await context.newPage();
  auth.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol.startsWith("http") && url.hostname !== "127.0.0.1") foreign.push(request.url());
  });
  await auth.goto(authBase + "/");
  await auth.waitForFunction(() => document.getElementById("status").textContent !== "idle");
  const withoutKey = {
    status: await auth.$eval("#status", (e) => e.textContent),
    models: await auth.$$eval("#model option", (os) => os.length),
  };
  await auth.fill("#api-key", "play-key");
  await auth.dispatchEvent("#api-key", "change");
  await auth.waitForFunction(() => document.getElementById("model").options.length > 0);
  await auth.fill("#mock-ttft_ms", "0");
  await auth.fill("#mock-token_delay_ms", "0");
  await auth.click("#send");
  await auth.waitForFunction(
    () => !["idle", "streaming"].includes(document.getElementById("status").textContent), null, { timeout: 20000 });
  results.auth = {
    withoutKey,
    status: await auth.$eval("#status", (e) => e.textContent),
    tokens: Number(await auth.$eval("#tokens", (e) => e.textContent)),
  };
  await auth.screenshot({ path: `${shots}/auth.png` });
  results.foreign = foreign;
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
