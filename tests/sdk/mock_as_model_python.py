"""The mock as a model (contract section 13) through the official Python SDKs,
against a running sluice whose mock answers any model name: structured output
through OpenAI's `chat.completions.parse` and `responses.parse` (Pydantic
models with nested objects, optional fields, lists and enums), the chat
streaming helper with a `response_format`, and Anthropic's `messages.parse`;
counting tokens with `messages.count_tokens` and `responses.input_tokens.count`;
`embeddings.create` (base64 on the wire, the SDK's default).

Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL (e.g. http://127.0.0.1:PORT/v1)
and SLUICE_KEY. Exits non-zero on the first failure.
"""
import enum
import os
from typing import List, Optional

import anthropic
from openai import OpenAI
from pydantic import BaseModel

BASE_URL = os.environ["SLUICE_BASE_URL"]
KEY = os.environ["SLUICE_KEY"]
client = OpenAI(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=30)


class Mood(str, enum.Enum):
    happy = "happy"
    grumpy = "grumpy"


class Address(BaseModel):
    street: str
    city: str


class Person(BaseModel):
    name: str
    age: int
    mood: Mood
    nickname: Optional[str]
    address: Address
    tags: List[str]


MESSAGES = [{"role": "user", "content": "Describe a person who lives in Paris"}]


def chat_parse():
    for model in ["gpt-4o", "mock"]:
        for seed in range(5):
            completion = client.chat.completions.parse(
                model=model, messages=MESSAGES, response_format=Person, seed=seed
            )
            message = completion.choices[0].message
            assert isinstance(message.parsed, Person), message
            assert message.refusal is None
            assert completion.model == model, completion.model


def chat_json_mode():
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, response_format={"type": "json_object"}
    )
    import json

    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def chat_stream_helper():
    with client.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, response_format=Person
    ) as stream:
        deltas = 0
        for event in stream:
            if event.type == "content.delta":
                deltas += 1
        final = stream.get_final_completion()
    assert deltas > 1, "the JSON streamed in pieces"
    assert isinstance(final.choices[0].message.parsed, Person)


def responses_parse():
    for seed in range(3):
        response = client.responses.parse(
            model=f"gpt-4.1:seed={seed}", input="Describe a person", text_format=Person
        )
        assert isinstance(response.output_parsed, Person), response


def anthropic_parse():
    claude = anthropic.Anthropic(base_url=BASE_URL.removesuffix("/v1"), api_key=KEY, max_retries=0)
    message = claude.messages.parse(
        model="claude-sonnet-4-5", max_tokens=1024, messages=MESSAGES, output_format=Person
    )
    assert isinstance(message.parsed_output, Person), message


def embeddings():
    texts = ["The cat sat on the mat", "A cat sat on a mat", "Quarterly revenue grew"]
    result = client.embeddings.create(model="text-embedding-3-small", input=texts)
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [1536] * 3
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    assert abs(dot(vectors[0], vectors[0]) - 1) < 1e-4
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2])
    short = client.embeddings.create(model="text-embedding-3-large", input="hi", dimensions=256)
    assert len(short.data[0].embedding) == 256


def bad_format_is_a_400():
    import openai

    try:
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "bogus"}}},
        )
    except openai.BadRequestError as err:
        assert err.body["param"] == "response_format.json_schema.schema", err.body
    else:
        raise AssertionError("a schema that is not one was accepted")


def counting_tokens():
    claude = anthropic.Anthropic(base_url=BASE_URL.removesuffix("/v1"), api_key=KEY, max_retries=0)
    short = claude.messages.count_tokens(model="claude-sonnet-4-5", messages=MESSAGES)
    longer = claude.messages.count_tokens(
        model="claude-sonnet-4-5", messages=MESSAGES, system="You are a careful assistant.",
        tools=[{"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    )
    assert 0 < short.input_tokens < longer.input_tokens, (short, longer)
    counted = client.responses.input_tokens.count(model="gpt-4o", input="Describe a person who lives in Paris")
    assert counted.object == "response.input_tokens", counted
    assert counted.input_tokens > 0, counted
    try:
        claude.messages.count_tokens(model="claude-sonnet-4-5", messages=[])
    except anthropic.BadRequestError as err:
        assert err.body["error"]["type"] == "invalid_request_error", err.body
    else:
        raise AssertionError("empty messages were counted")


for check in [embeddings, counting_tokens, chat_parse, chat_json_mode, chat_stream_helper, responses_parse, anthropic_parse, bad_format_is_a_400]:
    check()
    print("ok", check.__name__)
print("all checks passed")
