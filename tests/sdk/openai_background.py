"""The official Python `openai` SDK's background Responses (contract section 16)
against a running sluice: create in the background, retrieve while it runs and
once done, stream and resume with `starting_after` after a cut, cancel, and
`NotFoundError` for an unknown id.

Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL and SLUICE_KEY. Exits
non-zero on the first failure.
"""
import os
import time

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["SLUICE_BASE_URL"], api_key=os.environ["SLUICE_KEY"], max_retries=0, timeout=30)
PROMPT = "Tell me about rivers"
SLOW = {"mock": {"tokens": 30, "token_delay_ms": 40}}


def expected_text():
    """The same request in the foreground: the text a background one must end with."""
    whole = client.responses.create(model="mock", input=PROMPT, extra_body={"mock": {"tokens": 30}})
    return whole.output_text


def wait_done(response_id):
    for _ in range(200):
        response = client.responses.retrieve(response_id)
        if response.status != "in_progress":
            return response
        time.sleep(0.05)
    raise AssertionError(f"{response_id} never finished")


def background_without_a_stream(text):
    created = client.responses.create(model="mock", input=PROMPT, background=True, extra_body=SLOW)
    assert created.status in ("queued", "in_progress"), created.status
    assert created.id.startswith("resp_"), created.id
    running = client.responses.retrieve(created.id)
    assert running.id == created.id
    assert running.status == "in_progress", running.status
    done = wait_done(created.id)
    assert done.status == "completed", done.status
    assert done.id == created.id
    assert done.output_text == text, (done.output_text, text)
    assert done.usage.output_tokens == 30, done.usage


def a_cut_stream_resumes_after_its_last_sequence_number(text):
    stream = client.responses.create(model="mock", input=PROMPT, background=True, stream=True, extra_body=SLOW)
    seen = []
    for event in stream:
        seen.append(event)
        if len(seen) == 9:
            break
    stream.close()
    response_id = seen[0].response.id
    last = seen[-1].sequence_number
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=last))
    numbers = [e.sequence_number for e in seen] + [e.sequence_number for e in rest]
    assert numbers == list(range(len(numbers))), numbers
    assert rest[-1].type == "response.completed", rest[-1].type
    deltas = "".join(e.delta for e in seen + rest if e.type == "response.output_text.delta")
    assert deltas == text, (deltas, text)
    # The items are the same items across the cut.
    added = [e.item.id for e in seen + rest if e.type == "response.output_item.added"]
    finished = [item.id for item in rest[-1].response.output]
    assert added == finished, (added, finished)


def cancel_stops_it():
    created = client.responses.create(
        model="mock", input=PROMPT, background=True, extra_body={"mock": {"tokens": 500, "token_delay_ms": 40}}
    )
    time.sleep(0.3)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled", cancelled.status
    assert client.responses.retrieve(created.id).status == "cancelled"


def an_unknown_id_is_not_found():
    for unknown in ("resp_doesnotexist", "nothing-like-an-id"):
        try:
            client.responses.retrieve(unknown)
        except openai.NotFoundError:
            pass
        else:
            raise AssertionError(f"{unknown} was found")


text = expected_text()
background_without_a_stream(text)
a_cut_stream_resumes_after_its_last_sequence_number(text)
cancel_stops_it()
an_unknown_id_is_not_found()
print("all checks passed")
