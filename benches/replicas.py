#!/usr/bin/env python3
"""What sharing through Redis costs: CPU per token and time to first token
for native streams on one sluice without [store], on a replica with [store]
watched there, and watched through another replica.

    benches/replicas.py [BIN]        # default target/release/sluice

Starts its own redis-server and three release sluices on loopback (the mock
model, no upstream): `solo` (no [store]), and replicas `a` and `b` sharing
one Redis. Each case runs STREAMS concurrent generations of TOKENS tokens,
TOKEN_DELAY_MS apart, and reads the CPU time (user + system, from /proc)
each process spent meanwhile, Redis included; then TTFT_RUNS sequential
generations with no delay for the time to the first token frame:

- stream, no store / store: POST /v1/stream on solo / on a;
- watched, no store: POST /v1/generations on solo, watched there;
- watched here: POST /v1/generations on a, watched on a;
- watched elsewhere: POST /v1/generations on a, watched on b.

The mock's own planning is in every case; the differences are the store's.
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

STREAMS = 50
TOKENS = 200
TOKEN_DELAY_MS = 5
TTFT_RUNS = 40
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_port(port):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = json.dumps(body) if body is not None else None
    hdrs = {"content-type": "application/json"} if data else {}
    hdrs.update(headers or {})
    conn.request(method, path, data, hdrs)
    return conn, conn.getresponse()


def read_stream(response, on_first=None):
    """Reads an SSE body to its end; returns the token count."""
    tokens, first = 0, True
    for line in response:
        if line.startswith(b"event: error"):
            sys.stderr.write(f"an error frame: {response.readline()!r}\n")
        if line.startswith(b"data: {\"token\""):
            tokens += 1
            if first and on_first:
                on_first()
                first = False
    return tokens


def mock(tokens, delay):
    return {"prompt": "hi", "mock": {"tokens": tokens, "ttft_ms": 0, "token_delay_ms": delay}}


# case: (where it is made, where it is watched; None: streamed by /v1/stream)
CASES = {
    "stream, no store": ("solo", None),
    "stream, store": ("a", None),
    "watched, no store": ("solo", "solo"),
    "watched here": ("a", "a"),
    "watched elsewhere": ("a", "b"),
}


def one(case, ports, tokens, delay, on_first=None):
    made, watched = CASES[case]
    if watched is None:
        conn, response = request(ports[made], "POST", "/v1/stream", mock(tokens, delay))
        got = read_stream(response, on_first)
        conn.close()
        return got
    conn, response = request(ports[made], "POST", "/v1/generations", mock(tokens, delay))
    gen = json.loads(response.read())["id"]
    conn.close()
    watch = ports[watched]
    conn, response = request(watch, "GET", f"/v1/generations/{gen}/events")
    got = read_stream(response, on_first)
    conn.close()
    return got


def run_cpu(case, ports, pids):
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    counts = []

    def worker():
        counts.append(one(case, ports, TOKENS, TOKEN_DELAY_MS))

    threads = [threading.Thread(target=worker) for _ in range(STREAMS)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - start
    spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    tokens = sum(counts)
    # The mock may join pieces of one character into one frame: count frames.
    assert tokens >= STREAMS * TOKENS * 0.95, (case, tokens)
    return tokens, wall, spent


def run_ttft(case, ports):
    samples = []
    for _ in range(TTFT_RUNS):
        start = time.perf_counter()
        seen = []
        one(case, ports, 2, 0, lambda: seen.append(time.perf_counter()))
        samples.append((seen[0] - start) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.9)]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target/release/sluice")
    redis_server = shutil.which("redis-server") or sys.exit("redis-server is not installed")
    tmp = tempfile.mkdtemp()
    procs = []
    try:
        redis_port = free_port()
        procs.append(subprocess.Popen(
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL))
        wait_port(redis_port)
        limits = ("[limits]\nrequests_per_second = 0\nmax_concurrent_streams = 100000\n"
                  "per_client_concurrent_streams = 100000\n")
        store = f"[store]\nredis_url = \"redis://127.0.0.1:{redis_port}\"\n"
        ports, pids = {}, {"redis": procs[0].pid}
        for name, extra in [("solo", ""), ("a", store), ("b", store)]:
            path = os.path.join(tmp, f"{name}.toml")
            with open(path, "w") as f:
                f.write(limits + extra)
            ports[name] = free_port()
            proc = subprocess.Popen(
                [binary, "--config", path, "--listen", f"127.0.0.1:{ports[name]}"],
                stdout=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
            procs.append(proc)
            pids[name] = proc.pid
            wait_port(ports[name])
        for case in CASES:  # warm-up: tokenizer, connections
            one(case, ports, 3, 0)
        print(f"{STREAMS} streams x {TOKENS} tokens, {TOKEN_DELAY_MS} ms apart; "
              f"TTFT over {TTFT_RUNS} sequential generations")
        print(f"{'case':18} {'us CPU/token (sluice)':>22} {'us (redis)':>11} {'us (all)':>9}"
              f" {'TTFT p50 ms':>12} {'p90':>6}")
        for case in CASES:
            tokens, _, spent = run_cpu(case, ports, pids)
            p50, p90 = run_ttft(case, ports)
            sluice = sum(v for k, v in spent.items() if k != "redis")
            per = lambda s: s / tokens * 1e6
            print(f"{case:18} {per(sluice):22.2f} {per(spent['redis']):11.2f}"
                  f" {per(sluice + spent['redis']):9.2f} {p50:12.2f} {p90:6.2f}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
