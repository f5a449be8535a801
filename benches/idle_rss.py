#!/usr/bin/env python3
"""The RSS of a sluice process at rest: just started, then warm (after chat traffic on
the mock, which plans and counts every answer with the tokenizer) and idle again.

    python3 benches/idle_rss.py target/release/sluice [/tmp/sluice-old ...]

Each binary runs on the default config (the mock, in-process state) on a free loopback
port, in turn, twice, rounds interleaved. "warm" is read 15 s after the traffic, past
jemalloc's default decay of freed pages (10 s). Prints a markdown table; only the
standard library is used.
"""

import re
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def measure(binary):
    port = free_port()
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(2)
        started = rss_kib(proc.pid)
        body = b'{"model":"mock","stream":true,"mock":{"ttft_ms":0,"token_delay_ms":0},"messages":[{"role":"user","content":"Tell me about rivers."}]}'
        # 100: the default burst; the default rate (50 a second) is not reached.
        for _ in range(100):
            time.sleep(0.02)
            request = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                             headers={"content-type": "application/json"})
            urllib.request.urlopen(request, timeout=30).read()
        time.sleep(15)
        return started, rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def main():
    binaries = sys.argv[1:] or ["target/release/sluice"]
    results = {b: [] for b in binaries}
    for _ in range(2):
        for binary in binaries:
            results[binary].append(measure(binary))
    print("| binary | RSS just started (MiB) | RSS warm and idle (MiB) |")
    print("|---|---|---|")
    for binary, runs in results.items():
        started = " / ".join(f"{s / 1024:.1f}" for s, _ in runs)
        warm = " / ".join(f"{w / 1024:.1f}" for _, w in runs)
        print(f"| {binary} | {started} | {warm} |")


if __name__ == "__main__":
    main()
