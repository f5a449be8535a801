// @microsoft/fetch-event-source (the SSE client chat UIs use for POST
// streams) against the native door, with a handler that parses every
// message as JSON, as its README shows. It dispatches a block without data
// as an empty message, so a `retry:` in a block of its own would throw on
// the first event (contract section 18).
import { fetchEventSource } from "@microsoft/fetch-event-source";

// The library is written for browsers: the two globals it touches.
globalThis.window = globalThis;
globalThis.document = { hidden: false, addEventListener() {}, removeEventListener() {} };

const base = process.env.SLUICE_BASE_URL;
const key = process.env.SLUICE_KEY;

function check(ok, what) {
  if (!ok) {
    console.error("FAILED:", what);
    process.exit(1);
  }
}

const ctrl = new AbortController();
const tokens = [];
let done = null;
let messages = 0;
await fetchEventSource(`${base}/stream`, {
  method: "POST",
  headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
  body: JSON.stringify({ prompt: "Tell me a joke", mock: { tokens: 12 } }),
  signal: ctrl.signal,
  openWhenHidden: true,
  onmessage(ev) {
    messages += 1;
    const data = JSON.parse(ev.data); // throws on an empty message
    if (ev.event === "done") {
      done = data;
      ctrl.abort();
    } else if (ev.event === "error") {
      throw new Error(`error frame: ${ev.data}`);
    } else {
      tokens.push(data.token);
    }
  },
  onerror(err) {
    throw err; // no retries: any failure fails the check
  },
});
check(tokens.length === 12, `12 tokens, got ${tokens.length}`);
check(done && done.finish_reason === "stop", `a done frame: ${JSON.stringify(done)}`);
check(messages === 13, `13 messages (12 tokens and done), got ${messages}`);
console.log(`fetch-event-source: ${tokens.length} tokens, then done; all checks passed`);
