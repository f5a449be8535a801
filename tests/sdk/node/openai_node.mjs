// The official Node `openai` SDK against a running sluice.
// Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL set; exits non-zero on failure.
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.SLUICE_BASE_URL, apiKey: process.env.SLUICE_KEY, maxRetries: 0 });
const messages = [{ role: "user", content: "Tell me a joke" }];

async function streaming() {
  const stream = await client.chat.completions.create({
    model: "mock",
    messages,
    stream: true,
    stream_options: { include_usage: true },
    mock: { tokens: 8 },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  const contents = chunks.flatMap((c) => (c.choices[0]?.delta?.content ? [c.choices[0].delta.content] : []));
  assert.equal(contents.length, 8);
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, 8);
  assert.equal(chunks.at(-2).choices[0].finish_reason, "stop");
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
  return contents.join("");
}

async function nonStreaming(streamed) {
  const completion = await client.chat.completions.create({ model: "mock", messages, mock: { tokens: 8 } });
  assert.equal(completion.choices[0].message.content, streamed);
  assert.equal(completion.usage.completion_tokens, 8);
}

async function streamHelper() {
  // The SDK's higher-level helper assembles the message from the chunks.
  const runner = client.chat.completions.stream({ model: "mock", messages, mock: { tokens: 6 } });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.role, "assistant");
  assert.ok(final.choices[0].message.content.length > 0);
  assert.equal(final.choices[0].finish_reason, "stop");
}

async function errors() {
  await assert.rejects(
    client.chat.completions.create({ model: "no-such-model", messages }),
    (err) => err instanceof OpenAI.NotFoundError && err.code === "model_not_found",
  );
  await assert.rejects(
    client.chat.completions.create({ model: "mock", messages, stream: true, mock: { error_status: 429 } }),
    (err) => err instanceof OpenAI.RateLimitError,
  );
  const failing = await client.chat.completions.create({ model: "mock", messages, stream: true, mock: { fail_after: 3 } });
  await assert.rejects(async () => {
    for await (const _chunk of failing) {
      // consume until the error frame
    }
  }, (err) => err instanceof OpenAI.APIError && /fail_after/.test(err.message));
}

const streamed = await streaming();
await nonStreaming(streamed);
await streamHelper();
await errors();
console.log("node openai: all checks passed");
