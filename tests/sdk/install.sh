#!/usr/bin/env bash
# Installs the SDKs and client libraries that tests/it/sdk_clients.rs drives
# against sluice, at the versions pinned in requirements*.txt and
# node/package-lock.json, from PyPI and the npm registry: Python `openai`,
# `anthropic`, `openai-agents`, `pydantic-ai-slim`, `langchain-openai` and
# `llm` into target/sdk-venv; `instructor` (with the openai it takes) into
# target/sdk-venv-instructor; Node `openai`, the AI SDK (`ai`,
# `@ai-sdk/openai`, `@ai-sdk/anthropic`, `zod`) and
# `@microsoft/fetch-event-source` and `@ag-ui/client` into
# tests/sdk/node/node_modules.
# .ci/run calls this; run it once yourself to include the SDK tests in `cargo test`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

python3 -m venv "$root/target/sdk-venv"
"$root/target/sdk-venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$root/target/sdk-venv/bin/python" -c 'import openai, anthropic, agents, pydantic_ai, langchain_openai, llm; from importlib.metadata import version; print("python openai", openai.__version__, "anthropic", anthropic.__version__, "openai-agents", version("openai-agents"), "pydantic-ai-slim", pydantic_ai.__version__, "langchain-openai", version("langchain-openai"), "llm", version("llm"))'

python3 -m venv "$root/target/sdk-venv-instructor"
"$root/target/sdk-venv-instructor/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements-instructor.txt"
"$root/target/sdk-venv-instructor/bin/python" -c 'import instructor, openai; print("python instructor", instructor.__version__, "with openai", openai.__version__)'

(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
for pkg in openai ai @ai-sdk/openai @ai-sdk/anthropic @microsoft/fetch-event-source @ag-ui/client; do
  node -e 'console.log("node", process.argv[1], require(process.argv[2]).version)' "$pkg" "$here/node/node_modules/$pkg/package.json"
done
