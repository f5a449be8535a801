"""The official Python `openai` SDK's Responses API against a running sluice.

Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL (e.g. http://127.0.0.1:PORT/v1)
and SLUICE_KEY (the server's API key). Exits non-zero on the first failure.
"""
import json
import os
import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["SLUICE_BASE_URL"], api_key=os.environ["SLUICE_KEY"], max_retries=0, timeout=30)
# The mock's answer follows from the prompt: every call that compares texts
# sends the same instructions.
EIGHT = {"mock": {"tokens": 8}}
OPENING = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
CLOSING = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


def the_stream_helper_accumulates_the_response():
    with client.responses.stream(
        model="mock", input="Tell me a joke", instructions="Be brief.", extra_body=EIGHT
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) == 8, deltas
    assert final.status == "completed", final
    assert final.output_text == "".join(deltas), final
    assert final.instructions == "Be brief."
    assert final.usage.output_tokens == 8, final.usage
    assert final.usage.total_tokens == final.usage.input_tokens + 8
    return final.output_text


def create_with_stream_gives_every_event_in_order(text):
    events = list(
        client.responses.create(
            model="mock",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "Tell me a joke"}]}],
            instructions="Be brief.",
            stream=True,
            extra_body=EIGHT,
        )
    )
    types = [e.type for e in events]
    assert types[:4] == OPENING, types
    assert types[4:12] == ["response.output_text.delta"] * 8, types
    assert types[12:] == CLOSING + ["response.completed"], types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == text


def without_stream_one_response(text):
    response = client.responses.create(
        model="mock", input="Tell me a joke", instructions="Be brief.", extra_body=EIGHT
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == text, response
    assert response.usage.output_tokens == 8


def the_token_cap_is_incomplete():
    events = list(client.responses.create(model="mock", input="Tell me a joke", max_output_tokens=3, stream=True))
    assert events[-1].type == "response.incomplete", events[-1]
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    response = client.responses.create(model="mock", input="Tell me a joke", max_output_tokens=3)
    assert response.status == "incomplete", response
    assert response.usage.output_tokens == 3


def a_failure_mid_stream_is_response_failed():
    events = list(
        client.responses.create(model="mock", input="hi", stream=True, extra_body={"mock": {"fail_after": 3}})
    )
    assert events[-1].type == "response.failed", events[-1]
    assert events[-1].response.error.code == "upstream_error"
    assert "fail_after" in events[-1].response.error.message
    with client.responses.stream(model="mock", input="hi", extra_body={"mock": {"fail_after": 3}}) as stream:
        kinds = [e.type for e in stream]
        assert kinds[-1] == "response.failed", kinds
        expect(RuntimeError, stream.get_final_response)


def expect(exception, call):
    try:
        call()
    except exception as err:
        return err
    raise AssertionError(f"expected {exception.__name__}")


def errors_raise_the_sdk_exception_classes():
    err = expect(openai.NotFoundError, lambda: client.responses.create(model="no-such-model", input="hi"))
    assert err.code == "model_not_found", err.body
    err = expect(openai.BadRequestError, lambda: client.responses.create(model="mock", input="hi", max_output_tokens=0))
    assert err.param == "max_output_tokens", err.body
    err = expect(
        openai.RateLimitError,
        lambda: client.responses.create(model="mock", input="hi", stream=True, extra_body={"mock": {"error_status": 429}}),
    )
    assert err.response.headers["retry-after"] == "1"
    stranger = OpenAI(base_url=os.environ["SLUICE_BASE_URL"], api_key="sk-wrong", max_retries=0)
    expect(openai.AuthenticationError, lambda: stranger.responses.create(model="mock", input="hi"))


WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 3}},
    "required": ["city", "days"],
}
TOOLS = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]


def a_forced_tool_call_is_a_function_call_item():
    response = client.responses.create(model="mock", input="Weather?", tools=TOOLS, tool_choice="required")
    call = response.output[0]
    assert call.type == "function_call" and call.name == "get_weather", response.output
    arguments = json.loads(call.arguments)
    assert 1 <= arguments["days"] <= 3, arguments
    with client.responses.stream(model="mock", input="Weather?", tools=TOOLS, tool_choice="required") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds, kinds
    assert final.output[0].type == "function_call"
    assert final.output[0].arguments == call.arguments


def reasoning_is_a_reasoning_item():
    with client.responses.stream(model="mock:reasoning_tokens=5,tokens=3", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.reasoning_text.delta"]
        final = stream.get_final_response()
    assert len(deltas) == 5, deltas
    assert [item.type for item in final.output] == ["reasoning", "message"], final.output
    assert final.usage.output_tokens_details.reasoning_tokens == 5
    assert final.output_text and "".join(deltas) not in final.output_text


def main():
    text = the_stream_helper_accumulates_the_response()
    for check in [
        lambda: create_with_stream_gives_every_event_in_order(text),
        lambda: without_stream_one_response(text),
        the_token_cap_is_incomplete,
        a_failure_mid_stream_is_response_failed,
        errors_raise_the_sdk_exception_classes,
        a_forced_tool_call_is_a_function_call_item,
        reasoning_is_a_reasoning_item,
    ]:
        check()
    print(f"python openai {openai.__version__} (responses): all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError:
        import traceback

        traceback.print_exc()
        sys.exit(1)
