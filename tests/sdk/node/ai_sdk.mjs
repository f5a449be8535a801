// The AI SDK (`ai`) with its `@ai-sdk/openai` provider (the Responses API,
// its default) and its `@ai-sdk/anthropic` provider (the Messages API)
// against a running sluice. Run by tests/it/sdk_clients.rs with
// SLUICE_BASE_URL (e.g. http://127.0.0.1:PORT/v1) and SLUICE_KEY.
import assert from "node:assert/strict";
import { generateText, jsonSchema, streamText, tool } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createAnthropic } from "@ai-sdk/anthropic";
import { createRequire } from "node:module";

// The mock is a model the providers do not know; their notes about it are noise here.
globalThis.AI_SDK_LOG_WARNINGS = false;
const baseURL = process.env.SLUICE_BASE_URL;
const apiKey = process.env.SLUICE_KEY;
const providers = {
  "openai (responses)": createOpenAI({ baseURL, apiKey }),
  anthropic: createAnthropic({ baseURL, apiKey }),
};

async function streamed(model, options = {}) {
  const result = streamText({ model, prompt: "Tell me a joke", maxRetries: 0, ...options });
  const pieces = [];
  for await (const piece of result.textStream) pieces.push(piece);
  return { pieces, text: await result.text, finishReason: await result.finishReason, usage: await result.usage };
}

for (const [name, provider] of Object.entries(providers)) {
  const full = await streamed(provider("mock:tokens=8"));
  assert.equal(full.pieces.length, 8, `${name}: ${JSON.stringify(full.pieces)}`);
  assert.equal(full.text, full.pieces.join(""), name);
  assert.equal(full.finishReason, "stop", name);
  assert.equal(full.usage.outputTokens, 8, `${name}: ${JSON.stringify(full.usage)}`);
  assert.ok(full.usage.inputTokens > 0, name);
  assert.equal(full.usage.totalTokens, full.usage.inputTokens + 8, name);

  const capped = await streamed(provider("mock"), { maxOutputTokens: 3 });
  assert.equal(capped.finishReason, "length", name);
  assert.equal(capped.usage.outputTokens, 3, name);

  const whole = await generateText({ model: provider("mock:tokens=8"), prompt: "Tell me a joke", maxRetries: 0 });
  assert.equal(whole.text, full.text, name);
  assert.equal(whole.finishReason, "stop", name);

  // An unknown model is the provider's API error, with its status.
  const errors = [];
  const missing = streamText({
    model: provider("no-such-model"),
    prompt: "hi",
    maxRetries: 0,
    onError: ({ error }) => errors.push(error),
  });
  for await (const _ of missing.textStream) {
  }
  assert.equal(errors.length, 1, name);
  assert.equal(errors[0].statusCode, 404, `${name}: ${errors[0]}`);

  // A failure mid-stream is an error part after the tokens that came.
  const parts = [];
  const failing = streamText({ model: provider("mock:fail_after=3"), prompt: "hi", maxRetries: 0, onError: () => {} });
  for await (const part of failing.fullStream) parts.push(part);
  assert.equal(parts.filter((p) => p.type === "text-delta").length, 3, `${name}: ${JSON.stringify(parts)}`);
  assert.ok(parts.some((p) => p.type === "error"), `${name}: ${JSON.stringify(parts)}`);
}

// Tool calls: the mock calls the forced tool with arguments valid for its schema.
const weather = tool({
  description: "The weather in a city",
  inputSchema: jsonSchema({
    type: "object",
    properties: { city: { type: "string" }, unit: { enum: ["celsius", "fahrenheit"] } },
    required: ["city", "unit"],
  }),
});
for (const [name, provider] of Object.entries(providers)) {
  const result = streamText({
    model: provider("mock"),
    prompt: "Weather in Oslo?",
    tools: { get_weather: weather },
    toolChoice: "required",
    maxRetries: 0,
  });
  const calls = await result.toolCalls;
  assert.equal(calls.length, 1, `${name}: ${JSON.stringify(calls)}`);
  assert.equal(calls[0].toolName, "get_weather", name);
  assert.ok(["celsius", "fahrenheit"].includes(calls[0].input.unit), `${name}: ${JSON.stringify(calls[0].input)}`);
  assert.equal(await result.finishReason, "tool-calls", name);
}

// Reasoning: Anthropic's thinking blocks are the AI SDK's reasoning.
const thinking = streamText({ model: providers.anthropic("mock:reasoning_tokens=6,tokens=3"), prompt: "hi", maxRetries: 0 });
const reasoningText = await thinking.reasoningText;
assert.ok(reasoningText && reasoningText.length > 0, `reasoning: ${reasoningText}`);
assert.ok(!(await thinking.text).includes(reasoningText), "the reasoning stays apart from the answer");

const require = createRequire(import.meta.url);
const version = (pkg) => require(`${pkg}/package.json`).version;
console.log(
  `ai ${version("ai")}, @ai-sdk/openai ${version("@ai-sdk/openai")}, @ai-sdk/anthropic ${version("@ai-sdk/anthropic")}: all checks passed`
);
