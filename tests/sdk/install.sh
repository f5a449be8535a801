#!/usr/bin/env bash
# Installs the official OpenAI SDKs that tests/it/sdk_clients.rs drives against
# sluice, at the versions pinned here, from PyPI and the npm registry:
#   Python `openai` into target/sdk-venv, Node `openai` into tests/sdk/node/node_modules.
# .ci/run calls this; run it once yourself to include the SDK tests in `cargo test`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

python3 -m venv "$root/target/sdk-venv"
"$root/target/sdk-venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$root/target/sdk-venv/bin/python" -c 'import openai; print("python openai", openai.__version__)'

(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
node -e 'console.log("node openai", require("'"$here"'/node/node_modules/openai/package.json").version)'
