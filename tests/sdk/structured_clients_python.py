"""Structured output through the client libraries the client review found
failing against the mock (contract section 13): LangChain's
`with_structured_output` with `json_schema`, `json_mode` (the schema in the
prompt, as LangChain asks) and `function_calling`, and the `llm` CLI's
`--schema`. Instructor's modes run in their own venv (instructor_python.py).

Run by tests/it/sdk_clients.rs with SLUICE_BASE_URL (e.g.
http://127.0.0.1:PORT/v1) and SLUICE_KEY. Exits non-zero on the first failure.
"""
import json
import os
import subprocess
import sys
import tempfile
from typing import List

from langchain_openai import ChatOpenAI
from pydantic import BaseModel

BASE_URL = os.environ["SLUICE_BASE_URL"]
KEY = os.environ["SLUICE_KEY"]


class Person(BaseModel):
    name: str
    age: int
    hobbies: List[str]


def langchain():
    model = ChatOpenAI(model="gpt-4o", base_url=BASE_URL, api_key=KEY, max_retries=0)
    for method in ["json_schema", "function_calling"]:
        person = model.with_structured_output(Person, method=method).invoke("Invent a person")
        assert isinstance(person, Person), (method, person)
    # json_mode leaves the schema to the prompt, as LangChain's docs say.
    prompt = (
        "Invent a person. Answer in JSON that matches this JSON Schema:\n"
        + json.dumps(Person.model_json_schema())
    )
    person = model.with_structured_output(Person, method="json_mode").invoke(prompt)
    assert isinstance(person, Person), person
    print("ok langchain json_schema, function_calling, json_mode")


def llm_cli():
    home = tempfile.mkdtemp()
    with open(os.path.join(home, "extra-openai-models.yaml"), "w") as f:
        f.write(
            "- model_id: sluice-gpt\n  model_name: gpt-4o\n"
            f"  api_base: \"{BASE_URL}\"\n  api_key_name: sluice\n  supports_schema: true\n"
        )
    with open(os.path.join(home, "keys.json"), "w") as f:
        json.dump({"sluice": KEY}, f)
    llm = os.path.join(os.path.dirname(sys.executable), "llm")
    run = subprocess.run(
        [llm, "-m", "sluice-gpt", "--schema", "name, age int", "--no-log", "Invent a person"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "LLM_USER_PATH": home},
    )
    assert run.returncode == 0, run.stderr
    person = json.loads(run.stdout)
    assert isinstance(person["name"], str) and isinstance(person["age"], int), person
    print("ok llm --schema")


langchain()
llm_cli()
print("all checks passed")
