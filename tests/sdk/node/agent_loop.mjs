// The AI SDK's own tool loop (generateText with tools and stopWhen) against a
// running sluice whose mock answers any model name (contract section 13): the
// mock calls the tool the prompt is about, then answers its result, so the
// loop ends after two steps, on @ai-sdk/openai's Responses and Chat APIs and
// on @ai-sdk/anthropic. Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL
// and SLUICE_KEY.
import assert from "node:assert/strict";
import { generateText, stepCountIs, tool } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createAnthropic } from "@ai-sdk/anthropic";
import { z } from "zod";

globalThis.AI_SDK_LOG_WARNINGS = false;
const baseURL = process.env.SLUICE_BASE_URL;
const apiKey = process.env.SLUICE_KEY;
const openai = createOpenAI({ baseURL, apiKey });
const anthropic = createAnthropic({ baseURL, apiKey });
const models = {
  "openai (responses)": openai("gpt-4o"),
  "openai (chat)": openai.chat("gpt-4o"),
  anthropic: anthropic("claude-sonnet-4-5"),
};

for (const [name, model] of Object.entries(models)) {
  const calls = [];
  const result = await generateText({
    model,
    prompt: "What is the weather in Paris today?",
    tools: {
      get_weather: tool({
        description: "Get the current weather for a city",
        inputSchema: z.object({ city: z.string() }),
        execute: async ({ city }) => {
          calls.push(city);
          return `Sunny and 21 degrees in ${city}`;
        },
      }),
    },
    stopWhen: stepCountIs(5),
    maxRetries: 0,
  });
  assert.equal(calls.length, 1, `${name}: ${JSON.stringify(calls)}`);
  assert.equal(result.steps.length, 2, `${name}: ${result.steps.length} steps`);
  assert.ok(result.text.includes("Sunny and 21 degrees"), `${name}: ${result.text}`);
  console.log("ok", name);
}
console.log("all checks passed");
