"""instructor's modes (contract section 13) against a running sluice whose
mock answers any model name: TOOLS (a tool call), JSON (`json_object` with
the schema in the prompt), JSON_SCHEMA (`json_object` with a `schema`) and
MD_JSON (no format; the schema in the prompt, the answer in a fenced block).
instructor 1.17 pins jiter below what the pinned openai needs, so it runs
in a venv of its own (tests/sdk/install.sh).

Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL and SLUICE_KEY.
"""
import os
from typing import List

import instructor
from openai import OpenAI
from pydantic import BaseModel

client = OpenAI(base_url=os.environ["SLUICE_BASE_URL"], api_key=os.environ["SLUICE_KEY"], max_retries=0)


class User(BaseModel):
    name: str
    age: int
    hobbies: List[str]


for mode in [instructor.Mode.TOOLS, instructor.Mode.JSON, instructor.Mode.JSON_SCHEMA, instructor.Mode.MD_JSON]:
    patched = instructor.from_openai(client, mode=mode)
    user = patched.chat.completions.create(
        model="gpt-4o", response_model=User, max_retries=0,
        messages=[{"role": "user", "content": "Invent a user"}],
    )
    assert isinstance(user, User), (mode, user)
    print("ok instructor", mode.value)
print("all checks passed")
