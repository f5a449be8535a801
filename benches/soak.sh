#!/usr/bin/env bash
# The soak: sluice (release build, the mock behind the OpenAI-compatible
# provider, as in production) holds STREAMS streams for SECONDS while its
# resident memory is sampled every 10 s. After warm-up (the first 120 s, in
# which every stream's buffers reach their size) the RSS must be flat:
# no memory that grows with time or with tokens relayed.
#
#   benches/soak.sh [STREAMS] [SECONDS]     # default 3000 streams, 300 s
#
# Each stream gets a token every 200 ms (an answer of 2,000 tokens, longer
# than the hold; a longer one would spend the machine planning it). Prints one line
# per sample and the growth from the first sample after warm-up to the last.
set -euo pipefail
STREAMS=${1:-3000}
SECONDS_HELD=${2:-300}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"
[ -x "$BIN" ] || cargo build --release --locked --bin sluice --manifest-path "$ROOT/Cargo.toml"
UP_PORT=18400
PROXY_PORT=18401
TMP=$(mktemp -d)
cleanup() {
  kill "${PROXY:-}" "${UPSTREAM:-}" "${LOAD:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

printf '[limits]\nrequests_per_second = 0\nmax_concurrent_streams = 100000\nper_client_concurrent_streams = 100000\n' >"$TMP/upstream.toml"
cat >"$TMP/proxy.toml" <<TOML
[limits]
requests_per_second = 0
max_concurrent_streams = 100000
per_client_concurrent_streams = 100000
[timeouts]
total_ms = 86400000
[[models]]
name = "chat"
provider = "openai"
base_url = "http://127.0.0.1:$UP_PORT/v1"
upstream_model = "mock:ttft_ms=100,token_delay_ms=200,tokens=2000"
retries = 0
TOML
"$BIN" --listen 127.0.0.1:$UP_PORT --config "$TMP/upstream.toml" >/dev/null 2>&1 &
UPSTREAM=$!
"$BIN" --listen 127.0.0.1:$PROXY_PORT --config "$TMP/proxy.toml" >/dev/null 2>&1 &
PROXY=$!
for _ in $(seq 1 100); do
  "$BIN" health --url http://127.0.0.1:$PROXY_PORT/healthz 2>/dev/null && break
  sleep 0.2
done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$PROXY/status"; }
idle=$(rss)
"$BIN" bench --url http://127.0.0.1:$PROXY_PORT/v1/chat/completions -c "$STREAMS" --hold \
  --duration "$SECONDS_HELD" --json \
  --body '{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$TMP/report.json" &
LOAD=$!
echo "idle RSS ${idle} KiB; holding $STREAMS streams for $SECONDS_HELD s"
echo "t_s rss_kib kib_per_stream"
start=$(date +%s)
warm=""
while kill -0 "$LOAD" 2>/dev/null; do
  sleep 10
  t=$(( $(date +%s) - start ))
  now=$(rss)
  echo "$t $now $(( (now - idle) / STREAMS ))"
  if [ -z "$warm" ] && [ "$t" -ge 120 ]; then warm=$now; fi
  last=$now
done
wait "$LOAD"
python3 - "$TMP/report.json" <<PY
import json, sys
r = json.load(open(sys.argv[1]))
print(f"streams {r['streams']}, ends {r['ends']}, stalls {r.get('stalls')}")
PY
if [ -n "$warm" ]; then
  echo "after warm-up: ${warm} -> ${last} KiB ($(( last - warm )) KiB over the hold)"
fi
