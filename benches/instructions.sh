#!/usr/bin/env bash
# User-space instructions per relayed token, counted by valgrind's callgrind:
# unlike CPU time on a shared machine, the count repeats (within ~0.5% run to
# run), so it can judge a change that timing cannot see.
#
#   benches/instructions.sh [BINARY]             # default: target/release/sluice
#   benches/instructions.sh --requests [BINARY]  # per one-token request instead
#   benches/instructions.sh --native [BINARY]    # per token on the native door (/v1/stream)
#   benches/instructions.sh --responses [BINARY] # per token on the Responses door
#   benches/instructions.sh --messages [BINARY]  # per token on the Messages door
#   ROUTE='midstream = "continue"' benches/instructions.sh ...  # with the proxy route set so
#   PROXY='[telemetry] ...' benches/instructions.sh ...           # with these lines atop the proxy's config
#   UPSTREAM_TLS=1 benches/instructions.sh ...   # the upstream over https:// (a CA made here by openssl)
#
# A sluice mock (the release binary) serves as the OpenAI upstream; BINARY runs
# under callgrind as the proxy, with one serving thread. After a warm-up the
# counters are zeroed, 16 streams of 400 tokens (one every 2 ms, so each token
# crosses on its own, as in a chat) are relayed, and the total is divided by
# the tokens the clients received. With --requests: 400 one-token answers,
# divided by 400 (what a request costs apart from its tokens). Needs valgrind
# (apt install valgrind).
# Writes the profile to target/bench/callgrind-token.out (or -request.out)
# for callgrind_annotate.
set -euo pipefail

PER=token
DOOR=openai
if [ "${1:-}" = "--requests" ]; then
  PER=request
  shift
elif [ "${1:-}" = "--native" ] || [ "${1:-}" = "--responses" ] || [ "${1:-}" = "--messages" ]; then
  DOOR=${1#--}
  shift
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MAIN="$ROOT/target/release/sluice"
BIN=${1:-$MAIN}
UP_PORT=18300
PROXY_PORT=18301
[ -x "$MAIN" ] || cargo build --release --locked --bin sluice --manifest-path "$ROOT/Cargo.toml"
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

TMP=$(mktemp -d)
cleanup() {
  kill "${PROXY:-}" "${UPSTREAM:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

if [ "$PER" = token ]; then
  UPSTREAM_MODEL="mock:ttft_ms=0,token_delay_ms=2,tokens=400" STREAMS=16
else
  UPSTREAM_MODEL="mock:ttft_ms=0,token_delay_ms=0,tokens=1" STREAMS=400
fi
printf '[limits]\nrequests_per_second = 0\n' >"$TMP/upstream.toml"
SCHEME=http
if [ -n "${UPSTREAM_TLS:-}" ]; then
  # A CA and a leaf for 127.0.0.1 (webpki refuses a CA certificate as the
  # server's own); the proxy trusts the CA through SSL_CERT_FILE.
  SCHEME=https
  EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${EC[@]}" -keyout "$TMP/ca.key" -out "$TMP/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
  openssl req "${EC[@]}" -keyout "$TMP/key.pem" -out "$TMP/leaf.csr" -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$TMP/leaf.ext"
  openssl x509 -req -in "$TMP/leaf.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
    -out "$TMP/cert.pem" -days 2 -extfile "$TMP/leaf.ext" 2>/dev/null
  printf '[tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$TMP/cert.pem" "$TMP/key.pem" >>"$TMP/upstream.toml"
  export SSL_CERT_FILE="$TMP/ca.pem"
fi
cat >"$TMP/proxy.toml" <<EOF
${PROXY:-}
[limits]
requests_per_second = 0
[timeouts]
idle_ms = 60000
first_token_ms = 60000
[[models]]
name = "chat"
provider = "openai"
base_url = "$SCHEME://127.0.0.1:$UP_PORT/v1"
upstream_model = "$UPSTREAM_MODEL"
retries = 0
${ROUTE:-}
EOF

"$MAIN" --listen 127.0.0.1:$UP_PORT --config "$TMP/upstream.toml" >/dev/null 2>&1 &
UPSTREAM=$!
valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" \
  "$BIN" --listen 127.0.0.1:$PROXY_PORT --threads 1 --config "$TMP/proxy.toml" >/dev/null 2>"$TMP/valgrind.log" &
PROXY=$!
for _ in $(seq 1 200); do
  "$MAIN" health --url http://127.0.0.1:$PROXY_PORT/healthz 2>/dev/null && break
  sleep 0.3
done

BODY='{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}'
URL=http://127.0.0.1:$PROXY_PORT/v1/chat/completions
case "$DOOR" in
  native)
    BODY='{"model":"chat","prompt":"hi"}'
    URL=http://127.0.0.1:$PROXY_PORT/v1/stream ;;
  responses)
    BODY='{"model":"chat","stream":true,"input":"hi"}'
    URL=http://127.0.0.1:$PROXY_PORT/v1/responses ;;
  messages)
    BODY='{"model":"chat","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}'
    URL=http://127.0.0.1:$PROXY_PORT/v1/messages ;;
esac
"$MAIN" bench --url "$URL" --body "$BODY" -c 2 -n 4 --json >/dev/null
# The tokenizer's tables load on a blocking thread at start (under callgrind
# that takes many seconds); counting it would swamp a request's cost. Wait
# until the idle proxy's CPU time stops moving.
cpu() { awk '{print $14 + $15}' "/proc/$PROXY/stat"; }
before=$(cpu)
for _ in $(seq 1 120); do
  sleep 1
  now=$(cpu)
  [ "$now" = "$before" ] && break
  before=$now
done
callgrind_control -z "$PROXY" >/dev/null 2>&1
REPORT=$("$MAIN" bench --url "$URL" --body "$BODY" -c 4 -n "$STREAMS" --json)
callgrind_control -d "$PROXY" >/dev/null 2>&1
sleep 1

TOKENS=$(printf '%s' "$REPORT" | python3 -c 'import json, sys; print(json.load(sys.stdin)["tokens"])')
PROFILE=$(ls -t "$TMP"/callgrind.out.* | head -1)
INSTRUCTIONS=$(awk '/^(summary|totals):/ {n = $2} END {print n}' "$PROFILE")
mkdir -p "$ROOT/target/bench"
cp "$PROFILE" "$ROOT/target/bench/callgrind-$PER-$DOOR.out"
if [ "$PER" = token ]; then
  echo "tokens $TOKENS, user instructions $INSTRUCTIONS, per token $((INSTRUCTIONS / TOKENS))"
else
  echo "requests $STREAMS, user instructions $INSTRUCTIONS, per request $((INSTRUCTIONS / STREAMS))"
fi
