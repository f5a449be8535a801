"""The mock's faults by name (contract section 14) through the official Python
`openai` and `anthropic` SDKs: each surfaces as the exception (or the ending)
that SDK raises for the real thing, which is what a client under test must
handle.

Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL and SLUICE_KEY. Exits
non-zero on the first failure.
"""
import os

import anthropic
import openai

base = os.environ["SLUICE_BASE_URL"]
key = os.environ["SLUICE_KEY"]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=30)
claude = anthropic.Anthropic(base_url=base.removesuffix("/v1"), api_key=key, max_retries=0, timeout=30)
HI = [{"role": "user", "content": "Tell me about rivers"}]


def chat(fault, **extra):
    return client.chat.completions.create(
        model="mock", messages=HI, extra_body={"mock": {"fault": fault, "tokens": 8, **extra}}
    )


def raises(kind, call):
    try:
        call()
    except kind as err:
        return err
    raise AssertionError(f"expected {kind.__name__}")


raises(openai.RateLimitError, lambda: chat("rate_limited"))
raises(openai.InternalServerError, lambda: chat("overloaded"))
err = raises(openai.BadRequestError, lambda: chat("context_length"))
assert err.code == "context_length_exceeded", err.code
raises(openai.APIConnectionError, lambda: chat("reset"))
slow = client.with_options(timeout=1.0)
raises(openai.APITimeoutError, lambda: slow.chat.completions.create(
    model="mock", messages=HI, extra_body={"mock": {"fault": "hang"}}))
assert chat("content_filter", fault_after=3).choices[0].finish_reason == "content_filter"


def stream(fault, **extra):
    return client.chat.completions.create(
        model="mock", messages=HI, stream=True, extra_body={"mock": {"fault": fault, "tokens": 8, **extra}}
    )


# A broken frame, or a cut, fails the iteration; an answer with no terminal
# event just stops, with no finish reason.
for fault in ("malformed", "cut"):
    try:
        for _ in stream(fault, fault_after=2):
            pass
    except Exception:  # the SDK's JSON error, or httpx's transport error
        pass
    else:
        raise AssertionError(f"{fault}: the stream ended without an error")
chunks = list(stream("no_terminal"))
assert chunks and all(c.choices == [] or c.choices[0].finish_reason is None for c in chunks), chunks[-1]

raises(anthropic.OverloadedError, lambda: claude.messages.create(
    model="mock", max_tokens=64, messages=HI, extra_body={"mock": {"fault": "overloaded", "fault_status": 529}}))
raises(anthropic.RateLimitError, lambda: claude.messages.create(
    model="mock", max_tokens=64, messages=HI, extra_body={"mock": {"fault": "rate_limited"}}))
refused = claude.messages.create(
    model="mock", max_tokens=64, messages=HI, extra_body={"mock": {"fault": "content_filter", "fault_after": 2}})
assert refused.stop_reason == "refusal", refused.stop_reason
print("all checks passed")
