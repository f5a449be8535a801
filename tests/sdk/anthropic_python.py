"""The official Python `anthropic` SDK against a running sluice's Messages door.

Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL (e.g. http://127.0.0.1:PORT/v1)
and SLUICE_KEY (the server's API key, which the SDK sends as `x-api-key`).
Exits non-zero on the first failure.
"""
import os
import sys

import anthropic
from anthropic import Anthropic

# The SDK's base URL is the host: it adds `/v1/messages` itself.
HOST = os.environ["SLUICE_BASE_URL"].removesuffix("/v1")
client = Anthropic(base_url=HOST, api_key=os.environ["SLUICE_KEY"], max_retries=0, timeout=30)
MESSAGES = [{"role": "user", "content": "Tell me a joke"}]
EIGHT = {"mock": {"tokens": 8}}
# The mock's answer follows from the prompt: the same system prompt in each
# call makes them comparable.
SYSTEM = "Be brief."


def the_stream_helper_gives_text_and_the_final_message():
    with client.messages.stream(
        model="mock", max_tokens=256, system=SYSTEM, messages=MESSAGES, extra_body=EIGHT
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 8, pieces
    assert final.content[0].type == "text"
    assert final.content[0].text == "".join(pieces), final
    assert final.stop_reason == "end_turn", final
    assert final.usage.output_tokens == 8, final.usage
    assert final.usage.input_tokens > 0
    return final.content[0].text


def create_with_stream_gives_every_event_in_order(text):
    events = list(client.messages.create(
            model="mock", max_tokens=256, system=SYSTEM, messages=MESSAGES, stream=True, extra_body=EIGHT
        ))
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"], types
    assert types[2:10] == ["content_block_delta"] * 8, types
    assert types[10:] == ["content_block_stop", "message_delta", "message_stop"], types
    assert "".join(e.delta.text for e in events[2:10]) == text
    assert events[-2].delta.stop_reason == "end_turn"


def without_stream_one_message(text):
    message = client.messages.create(model="mock", max_tokens=256, system=SYSTEM, messages=MESSAGES, extra_body=EIGHT)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == text, message
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 8


def stop_reasons():
    with client.messages.stream(model="mock", max_tokens=3, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens", final
    assert final.usage.output_tokens == 3
    message = client.messages.create(
        model="mock:text=one two three four", max_tokens=256, messages=MESSAGES, stop_sequences=[" three"]
    )
    assert message.stop_reason == "stop_sequence", message
    assert message.stop_sequence == " three"
    assert message.content[0].text == "one two"


def models():
    ids = [m.id for m in client.models.list()]
    assert "mock" in ids, ids
    model = client.models.retrieve("mock")
    assert model.id == "mock" and model.type == "model", model


def expect(exception, call):
    try:
        call()
    except exception as err:
        return err
    raise AssertionError(f"expected {exception.__name__}")


def errors_raise_the_sdk_exception_classes():
    err = expect(
        anthropic.NotFoundError,
        lambda: client.messages.create(model="no-such-model", max_tokens=10, messages=MESSAGES),
    )
    assert err.body["error"]["type"] == "not_found_error", err.body
    stranger = Anthropic(base_url=HOST, api_key="sk-wrong", max_retries=0)
    err = expect(
        anthropic.AuthenticationError,
        lambda: stranger.messages.create(model="mock", max_tokens=10, messages=MESSAGES),
    )
    assert err.body["error"]["type"] == "authentication_error", err.body
    err = expect(
        anthropic.BadRequestError,
        lambda: client.messages.create(model="mock", max_tokens=0, messages=MESSAGES),
    )
    assert "max_tokens" in err.body["error"]["message"], err.body
    expect(
        anthropic.RateLimitError,
        lambda: client.messages.create(
            model="mock", max_tokens=10, messages=MESSAGES, extra_body={"mock": {"error_status": 429}}
        ),
    )


def an_error_mid_stream_raises():
    received = []

    def consume():
        with client.messages.stream(
            model="mock", max_tokens=256, messages=MESSAGES, extra_body={"mock": {"fail_after": 3}}
        ) as stream:
            for text in stream.text_stream:
                received.append(text)

    err = expect(anthropic.APIStatusError, consume)
    assert "fail_after" in str(err), err
    assert err.body["error"]["type"] == "api_error", err.body
    assert len(received) == 3, received


WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
}
TOOLS = [{"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER}]


def a_forced_tool_is_a_tool_use_block():
    message = client.messages.create(
        model="mock", max_tokens=256, messages=MESSAGES, tools=TOOLS, tool_choice={"type": "any"}
    )
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_weather", message
    assert block.input["unit"] in ("celsius", "fahrenheit"), block.input
    assert message.stop_reason == "tool_use"
    with client.messages.stream(
        model="mock", max_tokens=256, messages=MESSAGES, tools=TOOLS, tool_choice={"type": "tool", "name": "get_weather"}
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use", final
    assert final.content[0].input == block.input
    assert final.stop_reason == "tool_use"


def thinking_is_a_thinking_block():
    with client.messages.stream(
        model="mock:reasoning_tokens=6,tokens=3", max_tokens=256, messages=MESSAGES
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"], final.content
    assert final.content[0].thinking
    assert final.usage.output_tokens == 9


def main():
    text = the_stream_helper_gives_text_and_the_final_message()
    for check in [
        lambda: create_with_stream_gives_every_event_in_order(text),
        lambda: without_stream_one_message(text),
        stop_reasons,
        models,
        errors_raise_the_sdk_exception_classes,
        an_error_mid_stream_raises,
        a_forced_tool_is_a_tool_use_block,
        thinking_is_a_thinking_block,
    ]:
        check()
    print(f"python anthropic {anthropic.__version__}: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError:
        import traceback

        traceback.print_exc()
        sys.exit(1)
