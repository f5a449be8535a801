// An answer continued after its upstream stalled mid-stream (contract
// section 17), through the clients chat UIs use: the AI SDK's
// DefaultChatTransport (what useChat calls) with readUIMessageStream, and
// AG-UI's HttpAgent (its event verifier is always on). Each gets one whole
// answer (the seam is an SSE comment they skip) and one ending.
//
// The route `continuing-ui` is a mock with `midstream = "continue"`; the mock's
// `stall` fault after 3 tokens passes `idle_ms`. Run by
// tests/it/sdk_clients.rs with SLUICE_BASE_URL and SLUICE_KEY.
import assert from "node:assert/strict";
import { DefaultChatTransport, readUIMessageStream } from "ai";
import { HttpAgent } from "@ag-ui/client";

const base = process.env.SLUICE_BASE_URL;
const auth = { Authorization: `Bearer ${process.env.SLUICE_KEY}` };
const prompt = "Tell me about rivers";
const plain = { tokens: 12 };
const stalled = { tokens: 12, fault: "stall", fault_after: 3, fault_ms: 10000 };

// The answer with no fault, from the native door.
const response = await fetch(`${base}/stream`, {
  method: "POST",
  headers: { ...auth, "content-type": "application/json", accept: "application/x-ndjson" },
  body: JSON.stringify({ prompt, model: "continuing-ui", mock: plain }),
});
const expected = (await response.text()).trim().split("\n").map((line) => JSON.parse(line))
  .filter((line) => "token" in line).map((line) => line.token).join("");
assert.ok(expected.length > 0);

// How many answers on the route sluice has continued so far.
async function continued() {
  const metrics = await (await fetch(`${base.replace(/\/v1$/, "")}/metrics`)).text();
  const line = metrics.split("\n").find((l) =>
    l.startsWith('sluice_continuations_total{model="continuing-ui",reason="idle_timeout"}'));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

// The AI SDK: one text, one finish, no error.
{
  const transport = new DefaultChatTransport({
    api: `${base}/ui/chat`, headers: auth, body: { model: "continuing-ui", mock: stalled },
  });
  const stream = await transport.sendMessages({
    chatId: "chat-continued", trigger: "submit-message",
    messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: prompt }] }],
  });
  const [forChunks, forMessage] = stream.tee();
  const chunks = [];
  const reading = (async () => {
    for await (const chunk of forChunks) chunks.push(chunk);
  })();
  const errors = [];
  let message;
  for await (const m of readUIMessageStream({ stream: forMessage, onError: (e) => errors.push(e) })) message = m;
  await reading;
  const text = message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
  assert.equal(text, expected);
  assert.deepEqual(errors, []);
  assert.equal(chunks.filter((c) => c.type === "finish").length, 1);
  assert.equal(chunks.at(-1).type, "finish");
  assert.equal(await continued(), 1, "the answer was continued, not waited for");
}

// AG-UI: one assistant message with the whole text, RUN_FINISHED, no error.
{
  const agent = new HttpAgent({ url: `${base}/agui`, headers: auth, threadId: "thread-continued" });
  agent.messages = [{ id: "m1", role: "user", content: prompt }];
  const ends = [];
  await agent.runAgent({ forwardedProps: { model: "continuing-ui", mock: stalled } }, {
    onRunFinishedEvent: () => { ends.push("finished"); },
    onRunErrorEvent: () => { ends.push("error"); },
  });
  const reply = agent.messages.at(-1);
  assert.equal(reply.role, "assistant");
  assert.equal(reply.content, expected);
  assert.deepEqual(ends, ["finished"]);
  assert.equal(await continued(), 2, "the answer was continued, not waited for");
}

console.log("all checks passed");
