// The chat UI doors (contract section 15) driven by the clients chat UIs
// use: the AI SDK's DefaultChatTransport (what useChat calls) with
// readUIMessageStream, and AG-UI's HttpAgent (its event verifier is always
// on). Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL
// (http://127.0.0.1:PORT/v1) and SLUICE_KEY.
import assert from "node:assert/strict";
import { DefaultChatTransport, readUIMessageStream } from "ai";
import { HttpAgent } from "@ag-ui/client";

const base = process.env.SLUICE_BASE_URL;
const auth = { Authorization: `Bearer ${process.env.SLUICE_KEY}` };
const api = `${base}/ui/chat`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const userMessage = (text) => ({ id: `u-${Math.random()}`, role: "user", parts: [{ type: "text", text }] });

// What the native door answers for the same prompt and knobs: the text to match.
async function nativeText(prompt, mock) {
  const response = await fetch(`${base}/stream`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json", accept: "application/x-ndjson" },
    body: JSON.stringify({ prompt, mock }),
  });
  assert.equal(response.status, 200);
  const lines = (await response.text()).trim().split("\n").map((line) => JSON.parse(line));
  return lines.filter((line) => "token" in line).map((line) => line.token).join("");
}

// Reads a UI message chunk stream to its end: the chunks, and the message
// readUIMessageStream builds from them (as useChat would).
async function read(stream) {
  const [forChunks, forMessage] = stream.tee();
  const chunks = [];
  const reading = (async () => {
    const reader = forChunks.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      chunks.push(value);
    }
  })();
  let message;
  const errors = [];
  for await (const m of readUIMessageStream({ stream: forMessage, onError: (e) => errors.push(e) })) message = m;
  await reading;
  return { chunks, message, errors };
}

function transport(body = {}) {
  return new DefaultChatTransport({ api, headers: auth, body });
}

const textOf = (message) => message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");

// 1. An answer: the same text as the native door's, with usage as metadata.
{
  const prompt = "Tell me about rivers";
  const mock = { tokens: 8 };
  const chatId = "chat-text";
  const stream = await transport({ mock }).sendMessages({
    chatId, messages: [userMessage(prompt)], trigger: "submit-message", messageId: undefined, abortSignal: undefined,
  });
  const { chunks, message } = await read(stream);
  assert.equal(textOf(message), await nativeText(prompt, mock));
  assert.equal(chunks.filter((c) => c.type === "text-delta").length, 8);
  const finish = chunks.at(-1);
  assert.equal(finish.type, "finish");
  assert.equal(finish.finishReason, "stop");
  assert.equal(message.metadata.usage.outputTokens, 8);
  assert.ok(message.id.startsWith("msg_"), message.id);
  // Nothing runs for the chat now: the reconnect useChat makes on load gets 204.
  assert.equal(await transport().reconnectToStream({ chatId }), null);
}

// 2. Reasoning parts, before the text.
{
  const stream = await transport({ mock: { tokens: 4, reasoning_tokens: 3 } }).sendMessages({
    chatId: "chat-reasoning", messages: [userMessage("Think first")], trigger: "submit-message",
  });
  const { message } = await read(stream);
  const kinds = message.parts.map((p) => p.type).filter((t) => t !== "step-start");
  assert.deepEqual(kinds, ["reasoning", "text"], JSON.stringify(message.parts));
  assert.ok(message.parts.find((p) => p.type === "reasoning").text.length > 0);
}

// 3. A tool call of a tool the page offers, then the page's result back:
// the second turn answers from it.
{
  const tools = [{ type: "function", function: { name: "weather", description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
  const first = await read(await transport({ tools, mock: { tool_call: "weather" } }).sendMessages({
    chatId: "chat-tools", messages: [userMessage("Weather in Paris?")], trigger: "submit-message",
  }));
  const call = first.message.parts.find((p) => p.type === "tool-weather" || p.type === "dynamic-tool");
  assert.ok(call, JSON.stringify(first.message.parts));
  assert.equal(call.state, "input-available");
  assert.equal(typeof call.input.city, "string");
  assert.equal(first.chunks.at(-1).finishReason, "tool-calls");
  const answered = { ...first.message, parts: first.message.parts.map((p) =>
    p === call ? { ...p, state: "output-available", output: { temperature: "21 C" } } : p) };
  const second = await read(await transport({ tools }).sendMessages({
    chatId: "chat-tools", messages: [userMessage("Weather in Paris?"), answered], trigger: "submit-message",
  }));
  assert.ok(textOf(second.message).includes("21 C"), textOf(second.message));
}

// 4. A failure mid-stream: an error chunk, which useChat shows as its error.
{
  const { chunks, errors } = await read(await transport({ mock: { tokens: 8, fail_after: 3 } }).sendMessages({
    chatId: "chat-error", messages: [userMessage("Fail please")], trigger: "submit-message",
  }));
  const error = chunks.find((c) => c.type === "error");
  assert.ok(error && error.errorText.length > 0, JSON.stringify(chunks));
  assert.equal(errors.length, 1);
  // A request sluice cannot read is refused with its field named.
  await assert.rejects(
    transport({ max_token: 3 }).sendMessages({ chatId: "chat-bad", messages: [userMessage("hi")], trigger: "submit-message" }),
    /max_token/,
  );
}

// 5. Resume: the page that asked goes away mid-answer; a reconnect gets the
// answer from its start, then live, to the same end.
{
  const chatId = "chat-resume";
  const mock = { tokens: 12, token_delay_ms: 40 };
  const prompt = "A long answer";
  const aborted = new AbortController();
  const stream = await transport({ mock }).sendMessages({
    chatId, messages: [userMessage(prompt)], trigger: "submit-message", abortSignal: aborted.signal,
  });
  const reader = stream.getReader();
  let seen = 0;
  while (seen < 3) {
    const { value } = await reader.read();
    if (value.type === "text-delta") seen += 1;
  }
  aborted.abort();
  reader.releaseLock();
  const resumed = await transport().reconnectToStream({ chatId });
  assert.ok(resumed, "a running answer resumes");
  const { chunks, message } = await read(resumed);
  assert.equal(chunks[0].type, "start");
  assert.equal(chunks.filter((c) => c.type === "text-delta").length, 12);
  assert.equal(textOf(message), await nativeText(prompt, { tokens: 12 }));
  assert.equal(chunks.at(-1).type, "finish");
  assert.equal(await transport().reconnectToStream({ chatId }), null);
}

// 6. Stop: DELETE on the chat's stream cancels the answer (and its upstream
// request); the open stream ends with the SDK's abort chunk.
{
  const chatId = "chat-stop";
  const response = await fetch(api, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ id: chatId, messages: [userMessage("Go on and on")], mock: { tokens: 200, token_delay_ms: 50 } }),
  });
  const generation = response.headers.get("x-sluice-generation");
  const reading = read(transport().processResponseStream(response.body));
  await sleep(300);
  const stop = await fetch(`${api}/${chatId}/stream`, { method: "DELETE", headers: auth });
  assert.equal(stop.status, 200);
  assert.equal((await stop.json()).status, "cancelled");
  const { chunks } = await reading;
  assert.equal(chunks.at(-1).type, "abort", JSON.stringify(chunks.at(-1)));
  assert.ok(chunks.filter((c) => c.type === "text-delta").length < 200);
  const status = await (await fetch(`${base}/generations/${generation}`, { headers: auth })).json();
  assert.equal(status.status, "cancelled");
  assert.equal(await transport().reconnectToStream({ chatId }), null);
  const again = await fetch(`${api}/${chatId}/stream`, { method: "DELETE", headers: auth });
  assert.equal(again.status, 204);
}

// 7. AG-UI's HttpAgent: text, a frontend tool call, and RUN_ERROR.
{
  const agent = (props) => {
    const a = new HttpAgent({ url: `${base}/agui`, headers: auth, threadId: "thread-1" });
    a.messages = [{ id: "m1", role: "user", content: "Tell me about rivers" }];
    return [a, props];
  };
  const [textAgent] = agent();
  await textAgent.runAgent({ forwardedProps: { mock: { tokens: 8 } } });
  const reply = textAgent.messages.at(-1);
  assert.equal(reply.role, "assistant");
  assert.equal(reply.content, await nativeText("Tell me about rivers", { tokens: 8 }));

  const [toolAgent] = agent();
  const tools = [{ name: "weather", description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }];
  await toolAgent.runAgent({ tools, forwardedProps: { mock: { tool_call: "weather" } } });
  const calls = toolAgent.messages.flatMap((m) => m.toolCalls ?? []);
  assert.equal(calls.length, 1, JSON.stringify(toolAgent.messages));
  assert.equal(calls[0].function.name, "weather");
  assert.equal(typeof JSON.parse(calls[0].function.arguments).city, "string");

  const [failing] = agent();
  const runErrors = [];
  // The run ends with RUN_ERROR (the agent's subscribers hear it; its
  // runAgent resolves or rejects by version), and nothing after it: the
  // verifier would fail the run on any event past RUN_ERROR.
  await failing.runAgent({ forwardedProps: { mock: { tokens: 8, fail_after: 2 } } }, {
    onRunErrorEvent: ({ event }) => { runErrors.push(event); },
  }).catch(() => {});
  assert.equal(runErrors.length, 1);
  assert.ok(runErrors[0].message.length > 0);
  assert.equal(runErrors[0].code, "upstream_error");

  // A run that fails before its first token is a RUN_ERROR too.
  const [refused] = agent();
  const refusals = [];
  await refused.runAgent({ forwardedProps: { mock: { error_status: 503, tokens: 3 } } }, {
    onRunErrorEvent: ({ event }) => { refusals.push(event); },
  }).catch(() => {});
  assert.equal(refusals.length, 1, "a failure before the first token");
}

console.log("all checks passed");
