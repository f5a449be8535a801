#!/usr/bin/env python3
"""CPU per token of the proxy for keyed streams (`Idempotency-Key`: a log and
a detached run) against plain ones on the OpenAI door, in one run of one
proxy (single-threaded), with a second sluice as the mock upstream. Every
keyed stream has a fresh key, so none is a replay.

    python3 benches/keyed.py target/release/sluice

Coarse (CPU time from /proc in clock ticks, the Python client on the same
cores): it tells a hop per token from none, not a few percent.
"""
import http.client, json, os, sys, tempfile, threading, time, uuid, subprocess

TMP = tempfile.mkdtemp()

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/sluice"
UP, PX = 18400, 18401
cfg = f"""[limits]
requests_per_second = 0
[[models]]
name = "chat"
provider = "openai"
base_url = "http://127.0.0.1:{UP}/v1"
upstream_model = "mock:ttft_ms=0,token_delay_ms=2,tokens=200"
retries = 0
"""
open(os.path.join(TMP, "proxy.toml"), "w").write(cfg)
open(os.path.join(TMP, "up.toml"), "w").write("[limits]\nrequests_per_second = 0\n")
up = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{UP}", "--config", os.path.join(TMP, "up.toml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
px = subprocess.Popen([BIN, "--listen", f"127.0.0.1:{PX}", "--threads", "1", "--config", os.path.join(TMP, "proxy.toml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.5)

def cpu():
    f = open(f"/proc/{px.pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def rss():
    for line in open(f"/proc/{px.pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

def one(keyed):
    c = http.client.HTTPConnection("127.0.0.1", PX, timeout=60)
    headers = {"content-type": "application/json"}
    if keyed:
        headers["idempotency-key"] = uuid.uuid4().hex
    body = json.dumps({"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    c.request("POST", "/v1/chat/completions", body, headers)
    r = c.getresponse()
    n = r.read().count(b'"content":"')
    c.close()
    return n

def run(keyed, total=256, conc=16):
    tokens = [0]
    lock = threading.Lock()
    def worker(k):
        for _ in range(k):
            n = one(keyed)
            with lock:
                tokens[0] += n
    before = cpu()
    ts = [threading.Thread(target=worker, args=(total // conc,)) for _ in range(conc)]
    [t.start() for t in ts]; [t.join() for t in ts]
    return (cpu() - before) / tokens[0] * 1e6, tokens[0]

try:
    run(False, 16, 16); run(True, 16, 16)
    results = {}
    for rnd in range(3):
        for keyed in (False, True):
            us, n = run(keyed)
            results.setdefault(keyed, []).append(us)
    for keyed, v in results.items():
        v.sort()
        print(f"{'keyed' if keyed else 'plain'}: CPU us/token median {v[1]:.2f} (runs {', '.join(f'{x:.2f}' for x in v)})")
    print(f"RSS after: {rss()} KiB")
finally:
    px.kill(); up.kill()
