// The example chat page (examples/chat-ui: the AI SDK's useChat against
// sluice's UI door) in headless Debian Chromium, driven by playwright-core.
// Run by tests/it/ui_doors.rs with PAGE (the built page), API (sluice's
// /v1/ui/chat) and SCREENSHOTS (a folder) set. Prints one JSON line with
// what it saw; the Rust test judges it.
import { chromium } from "playwright-core";

const page_url = `${process.env.PAGE}?api=${encodeURIComponent(process.env.API)}`;
const shots = process.env.SCREENSHOTS;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = { log: [] };
const note = (what) => seen.log.push(`${new Date().toISOString().slice(11, 23)} ${what}`);
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  page.on("request", (request) => {
    if (request.url().includes("/v1/ui/chat")) note(`${request.method()} ${new URL(request.url()).pathname}`);
  });
  page.on("response", (response) => {
    if (response.url().includes("/v1/ui/chat")) note(`  -> ${response.status()}`);
  });
  const assistants = () => page.$$eval('[data-role="assistant"]', (all) => all.map((e) => e.textContent));
  const status = () => page.$eval("#status", (e) => e.textContent);

  await page.goto(page_url);
  await page.fill("input", "Tell me about rivers");
  await page.click('button[type="submit"]');
  await page.waitForFunction(() => {
    const a = document.querySelectorAll('[data-role="assistant"]');
    return a.length === 1 && a[0].textContent.length >= 20;
  }, null, { timeout: 20000 });
  seen.before = (await assistants())[0];
  note(`streaming, ${seen.before.length} characters shown; reloading the page`);
  await page.screenshot({ path: `${shots}/1-streaming.png` });

  await page.reload();
  await page.waitForFunction((before) => {
    const a = document.querySelectorAll('[data-role="assistant"]');
    return document.getElementById("status").textContent === "ready"
      && a.length >= 1 && a[a.length - 1].textContent.length > before;
  }, seen.before.length, { timeout: 30000 });
  seen.after = await assistants();
  note(`resumed and finished: ${seen.after.at(-1).length} characters, ${seen.after.length} assistant message(s)`);
  await page.screenshot({ path: `${shots}/2-resumed.png` });

  await page.fill("input", "And about lakes");
  await page.click('button[type="submit"]');
  await page.waitForFunction(() => {
    const a = document.querySelectorAll('[data-role="assistant"]');
    return a.length === 2 && a[1].textContent.length >= 10;
  }, null, { timeout: 20000 });
  await page.click('button[type="button"]');
  await page.waitForFunction(() => document.getElementById("status").textContent === "ready", null, { timeout: 10000 });
  seen.stopped = (await assistants())[1];
  await page.waitForTimeout(1000);
  seen.stoppedLater = (await assistants())[1];
  note(`stopped at ${seen.stopped.length} characters`);
  const chatId = await page.evaluate(() => localStorage.getItem("chat-id"));
  seen.resumeAfterStop = (await fetch(`${process.env.API}/${chatId}/stream`)).status;
  await page.screenshot({ path: `${shots}/3-stopped.png` });
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
