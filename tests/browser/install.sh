#!/usr/bin/env bash
# Installs what tests/it/browser.rs drives: Debian's Chromium (if missing) and
# playwright-core at the version pinned in package.json (it downloads no
# browser of its own); and builds the example chat page (examples/chat-ui)
# that tests/it/ui_doors.rs loads in it. .ci/run calls this; run it once yourself to include the
# browser test in `cargo test`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v chromium >/dev/null; then
    sudo_if_needed=""
    if [ "$(id -u)" != 0 ]; then sudo_if_needed="sudo"; fi
    $sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
chromium --version
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
node -e 'console.log("playwright-core", require("'"$here"'/node_modules/playwright-core/package.json").version)'
root="$(cd "$here/../.." && pwd)"
(cd "$root/examples/chat-ui" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build >/dev/null)
ls -l "$root/examples/chat-ui/dist/app.js"
