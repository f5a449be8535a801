// Structured output (contract section 13) through the AI SDK: generateObject
// and streamObject with a zod schema, on @ai-sdk/openai's Responses API (its
// default), its Chat Completions API (`.chat`, what OpenAI-compatible
// providers speak) and @ai-sdk/anthropic, against a running sluice whose mock
// answers any model name. Run by tests/it/sdk_clients.rs with
// SLUICE_BASE_URL (e.g. http://127.0.0.1:PORT/v1) and SLUICE_KEY.
import assert from "node:assert/strict";
import { generateObject, streamObject } from "ai";
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
  "openai (chat)": openai.chat("gpt-4o-mini"),
  anthropic: anthropic("claude-sonnet-4-5"),
};

const Recipe = z.object({
  name: z.string(),
  servings: z.number().int(),
  vegetarian: z.boolean(),
  difficulty: z.enum(["easy", "medium", "hard"]),
  ingredients: z.array(z.object({ item: z.string(), grams: z.number() })),
  note: z.string().nullable(),
});

for (const [name, model] of Object.entries(models)) {
  const { object } = await generateObject({ model, schema: Recipe, prompt: "A soup recipe", maxRetries: 0 });
  assert.ok(Recipe.safeParse(object).success, `${name}: ${JSON.stringify(object)}`);

  const streamed = streamObject({ model, schema: Recipe, prompt: "A soup recipe", maxRetries: 0 });
  let partials = 0;
  for await (const _ of streamed.partialObjectStream) partials += 1;
  const whole = await streamed.object;
  assert.ok(Recipe.safeParse(whole).success, `${name}: ${JSON.stringify(whole)}`);
  assert.ok(partials > 1, `${name}: the object streamed in pieces (${partials})`);
  console.log("ok", name);
}
console.log("all checks passed");
