"""An answer continued after its upstream stalled mid-stream (contract
section 17), through the official Python `openai` and `anthropic` SDKs: each
gets the one whole answer (the seam is an SSE comment they skip), one
ending, and its usage, streamed and whole.

The route `continuing` is a mock with `midstream = "continue"`; the mock's
`stall` fault after 3 tokens passes `idle_ms`, and sluice asks it again with
the answer so far. Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL and
SLUICE_KEY. Exits non-zero on the first failure.
"""
import os

import anthropic
import openai

base = os.environ["SLUICE_BASE_URL"]
key = os.environ["SLUICE_KEY"]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=30)
claude = anthropic.Anthropic(base_url=base.removesuffix("/v1"), api_key=key, max_retries=0, timeout=30)
HI = [{"role": "user", "content": "Tell me about rivers"}]
PLAIN = {"tokens": 12}
STALLED = {"tokens": 12, "fault": "stall", "fault_after": 3, "fault_ms": 10000}

whole = client.chat.completions.create(model="continuing", messages=HI, extra_body={"mock": PLAIN})
expected = whole.choices[0].message.content
assert expected, whole

# Streamed through the OpenAI SDK: the same text, one finish, the usage.
stream = client.chat.completions.create(
    model="continuing", messages=HI, stream=True,
    stream_options={"include_usage": True}, extra_body={"mock": STALLED},
)
text, finishes, usage = "", 0, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        text += choice.delta.content or ""
        finishes += choice.finish_reason is not None
assert text == expected, (text, expected)
assert finishes == 1, finishes
assert usage and usage.completion_tokens >= 12, usage

# Whole, through the OpenAI SDK.
again = client.chat.completions.create(model="continuing", messages=HI, extra_body={"mock": STALLED})
assert again.choices[0].message.content == expected, again

# Streamed through the Anthropic SDK: one message, the same text.
with claude.messages.stream(
    model="continuing", max_tokens=256, messages=HI, extra_body={"mock": STALLED}
) as events:
    streamed = "".join(events.text_stream)
    final = events.get_final_message()
assert streamed == expected, (streamed, expected)
assert final.stop_reason == "end_turn", final.stop_reason
assert final.content[0].text == expected

print("all checks passed")
