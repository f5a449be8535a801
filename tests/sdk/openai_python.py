"""The official Python `openai` SDK against a running sluice.

Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL set (e.g. http://127.0.0.1:PORT/v1)
and SLUICE_KEY (the server's API key).
Each check is a plain function; the script exits non-zero on the first failure.
"""
import json
import os
import sys

import openai
from openai import OpenAI

BASE_URL = os.environ["SLUICE_BASE_URL"]
client = OpenAI(base_url=BASE_URL, api_key=os.environ["SLUICE_KEY"], max_retries=0, timeout=30)
MESSAGES = [{"role": "user", "content": "Tell me a joke"}]


def streaming_without_usage():
    stream = client.chat.completions.create(
        model="mock", messages=MESSAGES, stream=True, extra_body={"mock": {"tokens": 8}}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(contents) == 8, contents
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert len({c.id for c in chunks}) == 1
    return "".join(contents)


def streaming_with_usage():
    stream = client.chat.completions.create(
        model="mock",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mock": {"tokens": 8}},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [], last
    assert last.usage.completion_tokens == 8, last.usage
    assert last.usage.total_tokens == last.usage.prompt_tokens + 8
    assert chunks[-2].choices[0].finish_reason == "stop"


def model_name_knobs():
    stream = client.chat.completions.create(
        model="mock:tokens=3,seed=7", messages=MESSAGES, stream=True
    )
    text = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(text) == 3, text


def non_streaming(streamed_text):
    completion = client.chat.completions.create(
        model="mock", messages=MESSAGES, extra_body={"mock": {"tokens": 8}}
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == streamed_text, completion
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 8


def legacy_completions():
    completion = client.completions.create(
        model="mock", prompt="Once upon a time", extra_body={"mock": {"tokens": 5}}
    )
    assert completion.choices[0].text, completion
    assert completion.usage.completion_tokens == 5
    streamed = list(
        client.completions.create(
            model="mock", prompt="Once upon a time", stream=True, extra_body={"mock": {"tokens": 5}}
        )
    )
    assert "".join(c.choices[0].text for c in streamed) == completion.choices[0].text


def models():
    ids = [m.id for m in client.models.list()]
    assert "mock" in ids, ids
    assert client.models.retrieve("mock").id == "mock"


def expect(exception, call):
    try:
        call()
    except exception as err:
        return err
    raise AssertionError(f"expected {exception.__name__}")


def errors_raise_the_sdk_exception_classes():
    err = expect(
        openai.NotFoundError,
        lambda: client.chat.completions.create(model="no-such-model", messages=MESSAGES),
    )
    assert err.status_code == 404
    assert err.code == "model_not_found", err.body
    err = expect(
        openai.BadRequestError,
        lambda: client.chat.completions.create(model="mock", messages=MESSAGES, max_tokens=0),
    )
    assert err.param == "max_tokens", err.body
    err = expect(
        openai.RateLimitError,
        lambda: client.chat.completions.create(
            model="mock", messages=MESSAGES, stream=True, extra_body={"mock": {"error_status": 429}}
        ),
    )
    assert err.response.headers["retry-after"] == "1"
    expect(
        openai.InternalServerError,
        lambda: client.chat.completions.create(
            model="mock", messages=MESSAGES, extra_body={"mock": {"error_status": 503}}
        ),
    )


def an_error_mid_stream_raises():
    stream = client.chat.completions.create(
        model="mock", messages=MESSAGES, stream=True, extra_body={"mock": {"fail_after": 3}}
    )
    received = []

    def consume():
        for chunk in stream:
            received.append(chunk)

    err = expect(openai.APIError, consume)
    assert "fail_after" in str(err), err
    assert len(received) == 4, received  # the role chunk and three tokens
    assert all(c.choices[0].finish_reason is None for c in received)


WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]


def reasoning_apart_from_the_answer():
    chunks = list(
        client.chat.completions.create(model="mock:reasoning_tokens=5,tokens=3", messages=MESSAGES, stream=True)
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    content = [d.content for d in deltas if d.content]
    assert reasoning, chunks
    assert len(content) == 3, content
    assert reasoning not in "".join(content)


def a_forced_tool_call():
    completion = client.chat.completions.create(
        model="mock", messages=MESSAGES, tools=TOOLS, tool_choice="required"
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather", completion
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str) and arguments["unit"] in ("celsius", "fahrenheit"), arguments
    assert completion.choices[0].finish_reason == "tool_calls"
    # The SDK's stream helper assembles the same call from its deltas.
    with client.chat.completions.stream(model="mock", messages=MESSAGES, tools=TOOLS, tool_choice="required") as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls[0]
    assert (streamed.id, streamed.function.arguments) == (call.id, call.function.arguments), final
    assert final.choices[0].finish_reason == "tool_calls"


def main():
    text = streaming_without_usage()
    checks = [
        streaming_with_usage,
        model_name_knobs,
        lambda: non_streaming(text),
        legacy_completions,
        models,
        errors_raise_the_sdk_exception_classes,
        an_error_mid_stream_raises,
        reasoning_apart_from_the_answer,
        a_forced_tool_call,
    ]
    for check in checks:
        check()
    print(f"python openai {openai.__version__}: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        import traceback

        traceback.print_exc()
        sys.exit(1)
