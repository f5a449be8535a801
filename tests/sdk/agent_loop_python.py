"""An agent's tool loop (contract section 13) through two agent frameworks,
against a running sluice whose mock answers any model name: the mock calls
the tool the user's message is about, then answers the tool's result, so the
loop ends after two model calls, as it would with a real model.

- the OpenAI Agents SDK (`openai-agents`), on the Chat Completions and the
  Responses API;
- pydantic-ai, on both too.

Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL (e.g.
http://127.0.0.1:PORT/v1) and SLUICE_KEY. Exits non-zero on the first failure.
"""
import asyncio
import os

import agents
from openai import AsyncOpenAI
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

BASE_URL = os.environ["SLUICE_BASE_URL"]
KEY = os.environ["SLUICE_KEY"]
QUESTION = "What is the weather in Paris today?"
# Nothing leaves the machine: the Agents SDK would send traces to OpenAI.
agents.set_tracing_disabled(True)
calls = []


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    calls.append(city)
    return f"Sunny and 21 degrees in {city}"


async def openai_agents():
    client = AsyncOpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0)
    tool = agents.function_tool(get_weather)
    for name, model in [
        ("chat", agents.OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client)),
        ("responses", agents.OpenAIResponsesModel(model="gpt-4o", openai_client=client)),
    ]:
        calls.clear()
        agent = agents.Agent(name="Weather", instructions="Answer briefly.", tools=[tool], model=model)
        result = await agents.Runner.run(agent, QUESTION, max_turns=4)
        assert len(calls) == 1, (name, calls)
        assert len(result.raw_responses) == 2, (name, len(result.raw_responses))
        assert "Sunny and 21 degrees" in result.final_output, (name, result.final_output)
        print("ok openai-agents", name)


def pydantic_ai():
    provider = OpenAIProvider(base_url=BASE_URL, api_key=KEY)
    for name, model in [
        ("chat", OpenAIChatModel("gpt-4o", provider=provider)),
        ("responses", OpenAIResponsesModel("gpt-4o", provider=provider)),
    ]:
        calls.clear()
        agent = PydanticAgent(model, instructions="Answer briefly.", tools=[get_weather])
        result = agent.run_sync(QUESTION)
        assert len(calls) == 1, (name, calls)
        assert result.usage().requests == 2, (name, result.usage())
        assert "Sunny and 21 degrees" in result.output, (name, result.output)
        print("ok pydantic-ai", name)


asyncio.run(openai_agents())
pydantic_ai()
print("all checks passed")
