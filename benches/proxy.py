#!/usr/bin/env python3
"""Side-by-side proxy benchmark: direct vs sluice vs nginx, one machine, one run.

    python3 benches/proxy.py            # builds, installs nginx if missing, runs, prints markdown
    SLUICE_BASELINE=/tmp/sluice-old python3 benches/proxy.py   # also an older build, side by side
    SLUICE_BENCH_NATIVE=1 python3 benches/proxy.py             # also through the native door
    SLUICE_BENCH_HTTP2=1 python3 benches/proxy.py              # also with clients on HTTP/2
    SLUICE_BENCH_ROUNDS=3 python3 benches/proxy.py             # CPU workloads 3 times, the median kept

Three paths to the same upstream (a sluice mock serving OpenAI chunks):
  direct  client -> upstream
  sluice  client -> sluice (provider "openai") -> upstream
  nginx   client -> nginx (1 worker, proxy_buffering off, HTTP/1.1 keep-alive) -> upstream

Workloads (OpenAI chat streaming on every path):
  chat      100 concurrent, 64 tokens, first at 50 ms, then one every 10 ms (and at concurrency 1)
  firehose  32 concurrent, 256 tokens, no delay
  hold      2,000 open streams, one token every 2 s
  hangup    clients leave after 5 tokens
  mock      the mock alone holding ~20,000 streams paced at 20 ms (as many as the fd limit allows)

Per path it measures the relaying process's CPU time per token (utime + stime from
/proc/PID/stat), RSS per held stream (VmRSS from /proc/PID/status), TTFT and ITL
percentiles (from `sluice bench`), and for hang-ups whether the upstream saw the client
leave and how many tokens it produced past the hang-up (from the upstream's /metrics).
With SLUICE_BASELINE set to another sluice binary, a fourth path,
`sluice-before`, runs that binary with the same config, so a change is judged
before and after in one run. Only the standard library is used. Results are printed as markdown and written to
target/bench/results.md and results.json.
"""

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sluice")
OUT = os.path.join(ROOT, "target", "bench")
UPSTREAM, SLUICE, NGINX, BEFORE = 18000, 18001, 18002, 18003
BASELINE = os.environ.get("SLUICE_BASELINE")
NATIVE = os.environ.get("SLUICE_BENCH_NATIVE") == "1"
HTTP2 = os.environ.get("SLUICE_BENCH_HTTP2") == "1"
# CPU figures on a shared machine move ±15% run to run: with more than one
# round every CPU workload runs that many times per path, interleaved, and
# the median round is reported.
ROUNDS = max(1, int(os.environ.get("SLUICE_BENCH_ROUNDS", "1")))
# HTTP/2 holds its streams on one connection, which takes 256 at once
# (src/listener.rs), so the HTTP/2 hold holds fewer; per stream it compares.
HTTP2_HOLD = 250
TICK = os.sysconf("SC_CLK_TCK")

WORKLOADS = {
    # name: (upstream model with mock knobs, concurrency, streams)
    "chat": ("mock:ttft_ms=50,token_delay_ms=10,tokens=64", 100, 1000),
    "chat-c1": ("mock:ttft_ms=50,token_delay_ms=10,tokens=64", 1, 30),
    "firehose": ("mock:ttft_ms=0,token_delay_ms=0,tokens=256", 32, 1600),
    "hold": ("mock:ttft_ms=0,token_delay_ms=2000,tokens=100", 2000, None),
    "hangup": ("mock:ttft_ms=0,token_delay_ms=10,tokens=64", 100, 500),
}
HOLD_SECS = 8
PROCS = []


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def start(cmd, **kw):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    PROCS.append(proc)
    return proc


def stop_all():
    for proc in PROCS:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in PROCS:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_port(port):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"nothing answered on port {port}")


def cpu_split(pids):
    """utime and stime apart, in seconds: on loopback the kernel's share is
    the same system calls for every proxy, so the user share is the gap."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime, stime (fields 14, 15)
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / TICK, system / TICK


def cpu_seconds(pids):
    return sum(cpu_split(pids))


def median_round(entries):
    """The round with the median CPU per token, and every round's figure."""
    ranked = sorted(entries, key=lambda e: e["cpu_us_per_token"])
    entry = dict(ranked[(len(ranked) - 1) // 2])
    entry["cpu_us_per_token_rounds"] = [e["cpu_us_per_token"] for e in entries]
    return entry


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return total


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def bench(port, model, concurrency, streams=None, extra=(), native=False, http2=False):
    if native:
        body = json.dumps({"model": model, "prompt": "Tell me about rivers."})
        url = f"http://127.0.0.1:{port}/v1/stream"
    else:
        body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "Tell me about rivers."}]})
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
    cmd = [BIN, "bench", "--url", url, "--body", body, "-c", str(concurrency), "--json", *extra]
    if http2:
        cmd.append("--http2")
    if streams:
        cmd += ["-n", str(streams)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def build():
    log("building the release binary ...")
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "sluice"], cwd=ROOT, check=True)


def nginx_binary():
    for path in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.path.exists(path):
            return path
    log("installing nginx from Debian ...")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return nginx_binary()


def write_configs(tmp):
    limits = "[limits]\nrequests_per_second = 0\nmax_concurrent_streams = 100000\nper_client_concurrent_streams = 100000\n"
    with open(os.path.join(tmp, "upstream.toml"), "w") as f:
        # nginx's requests name its upstream group `up` as their Host.
        f.write(limits + '[cors]\nallowed_hosts = ["127.0.0.1", "up"]\n')
    models = "".join(
        f'[[models]]\nname = "{name}"\nprovider = "openai"\nbase_url = "http://127.0.0.1:{UPSTREAM}/v1"\n'
        f'upstream_model = "{upstream}"\nretries = 0\n'
        for name, (upstream, _, _) in WORKLOADS.items()
    )
    with open(os.path.join(tmp, "sluice.toml"), "w") as f:
        f.write(limits + "[timeouts]\nidle_ms = 60000\n" + models)
    os.makedirs(os.path.join(tmp, "nginx"), exist_ok=True)
    with open(os.path.join(tmp, "nginx", "nginx.conf"), "w") as f:
        f.write(f"""
worker_processes 1;
worker_rlimit_nofile 20000;
pid nginx.pid;
error_log stderr error;
events {{ worker_connections 19000; }}
http {{
    access_log off;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    upstream up {{ server 127.0.0.1:{UPSTREAM}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{NGINX} backlog=4096;
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
""")
    os.makedirs(os.path.join(tmp, "nginx", "tmp"), exist_ok=True)


def run():
    fds = raise_fd_limit()
    build()
    nginx = nginx_binary()
    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    write_configs(tmp)
    upstream = start([BIN, "--listen", f"127.0.0.1:{UPSTREAM}", "--config", os.path.join(tmp, "upstream.toml")])
    proxy = start([BIN, "--listen", f"127.0.0.1:{SLUICE}", "--config", os.path.join(tmp, "sluice.toml")])
    nginx_master = start([nginx, "-p", os.path.join(tmp, "nginx"), "-c", "nginx.conf", "-g", "daemon off; user root;"])
    before = None
    if BASELINE:
        before = start([BASELINE, "--listen", f"127.0.0.1:{BEFORE}", "--config", os.path.join(tmp, "sluice.toml")])
    for port in (UPSTREAM, SLUICE) + ((BEFORE,) if before else ()):
        wait_port(port)
    time.sleep(0.5)
    nginx_pids = [nginx_master.pid] + children(nginx_master.pid)
    paths = {
        "direct": (UPSTREAM, [upstream.pid], lambda w: WORKLOADS[w][0]),
        "sluice": (SLUICE, [proxy.pid], lambda w: w),
        "nginx": (NGINX, nginx_pids, lambda w: WORKLOADS[w][0]),
    }
    if before:
        paths["sluice-before"] = (BEFORE, [before.pid], lambda w: w)
    if HTTP2:
        # The same sluice, its clients speaking cleartext HTTP/2: every
        # stream of a workload on one connection.
        paths["sluice-h2"] = (SLUICE, [proxy.pid], lambda w: w)
    if NATIVE:
        # The same processes through the native door (/v1/stream), whose
        # streams are generations with a log.
        paths["sluice-native"] = (SLUICE, [proxy.pid], lambda w: w)
        if before:
            paths["sluice-before-native"] = (BEFORE, [before.pid], lambda w: w)
    # Warm every path (connections, tokenizer) before measuring.
    for port, _, model in paths.values():
        bench(port, model("chat"), 20, 40)

    results = {"machine": machine(), "fd_limit": fds, "rounds": ROUNDS, "workloads": {}}
    for workload in ("chat", "chat-c1", "firehose", "hangup"):
        _, concurrency, streams = WORKLOADS[workload]
        extra = ["--hangup-after", "5"] if workload == "hangup" else []
        names = list(paths)
        rounds = {path: [] for path in names}
        for r in range(ROUNDS):
            # Each round starts with the next path, so no path always runs
            # first (or right after the same neighbour).
            for path in names[r % len(names):] + names[:r % len(names)]:
                port, pids, model = paths[path]
                before_up = metrics(UPSTREAM)
                cpu = cpu_split(pids)
                report = bench(port, model(workload), concurrency, streams, extra,
                               native=path.endswith("-native"), http2=path.endswith("-h2"))
                cpu = tuple(b - a for a, b in zip(cpu, cpu_split(pids)))
                time.sleep(0.5)
                after_up = metrics(UPSTREAM)
                entry = summarise(report, cpu)
                if workload == "hangup":
                    entry.update(hangup(before_up, after_up, report))
                rounds[path].append(entry)
                log(f"{workload:9} {path:7} {entry}")
        for path in names:
            results["workloads"].setdefault(workload, {})[path] = median_round(rounds[path])
    for path, (port, pids, model) in paths.items():
        if path.endswith("-native"):
            continue
        if path.endswith("-h2"):
            entry = hold(port, pids, model("hold"), HTTP2_HOLD, http2=True)
        else:
            entry = hold(port, pids, model("hold"))
        results["workloads"].setdefault("hold", {})[path] = entry
        log(f"hold      {path:7} {entry}")
    results["mock_alone"] = mock_alone(upstream.pid, fds)
    log(f"mock alone {results['mock_alone']}")
    stop_all()
    shutil.rmtree(tmp, ignore_errors=True)
    return results


def summarise(report, cpu):
    tokens = max(report["tokens"], 1)
    pct = lambda k, q: (report[k] or {}).get(q)
    user, sys_ = cpu
    return {
        "tokens": report["tokens"], "streams": report["streams"], "errors": report["errors"],
        "stalls": report["stalls"], "tokens_per_s": round(report["tokens_per_s"]),
        "cpu_us_per_token": round((user + sys_) * 1e6 / tokens, 2),
        "user_us_per_token": round(user * 1e6 / tokens, 2),
        "sys_us_per_token": round(sys_ * 1e6 / tokens, 2),
        "ttft_p50_ms": pct("ttft", "p50_ms"), "ttft_p99_ms": pct("ttft", "p99_ms"),
        "itl_p50_ms": pct("itl", "p50_ms"), "itl_p99_ms": pct("itl", "p99_ms"),
        "ends": report["ends"],
    }


def hangup(before, after, report):
    key = 'sluice_streams_ended_total{model="mock",ended="client_gone",error_type=""}'
    tokens_key = 'sluice_tokens_relayed_total{model="mock"}'
    seen = after.get(key, 0) - before.get(key, 0)
    produced = after.get(tokens_key, 0) - before.get(tokens_key, 0)
    streams = report["streams"]
    return {
        "upstream_saw_hangup": int(seen),
        "extra_tokens_per_stream": round((produced - report["tokens"]) / max(streams, 1), 2),
    }


def hold(port, pids, model, streams=2000, http2=False):
    idle = rss_kib(pids)
    cpu = cpu_seconds(pids)
    proc = subprocess.Popen(
        [BIN, "bench", "--url", f"http://127.0.0.1:{port}/v1/chat/completions", "--json", "--hold",
         "-c", str(streams), "--duration", str(HOLD_SECS), "--ramp", "1000", "--expected-gap-ms", "2000",
         "--body", json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
         *(["--http2"] if http2 else [])],
        stdout=subprocess.PIPE, text=True)
    time.sleep(HOLD_SECS - 2)
    held = rss_kib(pids)
    report = json.loads(proc.communicate()[0])
    cpu = cpu_seconds(pids) - cpu
    streams = report["streams"]
    return {
        "streams": streams, "ends": report["ends"], "stalls": report["stalls"],
        "rss_idle_kib": idle, "rss_held_kib": held,
        "rss_kib_per_stream": round((held - idle) / streams, 1),
        "cpu_ms": round(cpu * 1000),
    }


def mock_alone(pid, fds):
    streams = min(20000, fds - 500)
    idle = rss_kib([pid])
    cpu = cpu_seconds([pid])
    secs = 15
    body = json.dumps({"model": "mock:ttft_ms=0,token_delay_ms=20,tokens=1000", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
    proc = subprocess.Popen(
        [BIN, "bench", "--url", f"http://127.0.0.1:{UPSTREAM}/v1/chat/completions", "--json", "--hold",
         "-c", str(streams), "--duration", str(secs), "--ramp", "4000", "--expected-gap-ms", "20", "--body", body],
        stdout=subprocess.PIPE, text=True)
    time.sleep(secs - 2)
    held = rss_kib([pid])
    report = json.loads(proc.communicate()[0])
    cpu = cpu_seconds([pid]) - cpu
    return {
        "streams": report["streams"], "ends": report["ends"], "tokens": report["tokens"],
        "stalls": report["stalls"], "itl_p50_ms": report["itl"]["p50_ms"] if report["itl"] else None,
        "itl_p99_ms": report["itl"]["p99_ms"] if report["itl"] else None,
        "cpu_us_per_token": round(cpu * 1e6 / max(report["tokens"], 1), 2),
        "rss_kib_per_stream": round((held - idle) / max(report["streams"], 1), 1),
    }


def machine():
    with open("/proc/cpuinfo") as f:
        model = re.search(r"model name\s*:\s*(.*)", f.read())
    nginx_version = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True).stderr.strip()
    return {"cpu": model.group(1) if model else "?", "cores": os.cpu_count(), "kernel": os.uname().release,
            "nginx": nginx_version}


def markdown(results):
    w = results["workloads"]
    lines = [f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
             f"Linux {results['machine']['kernel']}, {results['machine']['nginx']}.", ""]
    if results["rounds"] > 1:
        lines += [f"CPU: the median of {results['rounds']} rounds (every round's figure in results.json).", ""]
    lines += ["| workload | path | CPU µs/token (user + sys) | TTFT p50 / p99 ms | ITL p50 / p99 ms | tokens/s | errors | stalls |",
              "|---|---|---|---|---|---|---|---|"]
    for name in ("chat", "chat-c1", "firehose", "hangup"):
        for path, e in w[name].items():
            cpu = f"{e['cpu_us_per_token']} ({e['user_us_per_token']} + {e['sys_us_per_token']})"
            lines.append(f"| {name} | {path} | {cpu} | {e['ttft_p50_ms']} / {e['ttft_p99_ms']} | "
                         f"{e['itl_p50_ms']} / {e['itl_p99_ms']} | {e['tokens_per_s']} | {e['errors']} | {e['stalls']} |")
    lines += ["", "| hold (2,000 streams, a token every 2 s; 250 on HTTP/2) | RSS KiB per stream | idle RSS KiB | ends | stalls |",
              "|---|---|---|---|---|"]
    for path, e in w["hold"].items():
        lines.append(f"| {path} | {e['rss_kib_per_stream']} | {e['rss_idle_kib']} | {e['ends']} | {e['stalls']} |")
    h = w["hangup"]
    lines += ["", "| hang-up after 5 tokens | upstream saw the hang-up | extra tokens per stream |", "|---|---|---|"]
    for path, e in h.items():
        lines.append(f"| {path} | {e['upstream_saw_hangup']} of {e['streams']} | {e['extra_tokens_per_stream']} |")
    ratio = lambda a, b: round(a / b, 2) if b else float("nan")
    s, n = w["chat"]["sluice"], w["chat"]["nginx"]
    lines += ["", "| sluice / nginx | ratio | target |", "|---|---|---|",
              f"| CPU per token, chat | {ratio(s['cpu_us_per_token'], n['cpu_us_per_token'])} | ≤ 1.25 |",
              f"| CPU per token, firehose | {ratio(w['firehose']['sluice']['cpu_us_per_token'], w['firehose']['nginx']['cpu_us_per_token'])} "
              f"(sluice {w['firehose']['sluice']['cpu_us_per_token']} µs) | sluice ≤ 3 µs |",
              f"| RSS per held stream | {ratio(w['hold']['sluice']['rss_kib_per_stream'], w['hold']['nginx']['rss_kib_per_stream'])} | ≤ 1 |"]
    if "sluice-before" in w["chat"]:
        b = w["chat"]["sluice-before"]
        lines += [f"| CPU per token, chat, sluice-before | {ratio(b['cpu_us_per_token'], n['cpu_us_per_token'])} | (the baseline) |",
                  f"| CPU per token, firehose, sluice-before | sluice-before {w['firehose']['sluice-before']['cpu_us_per_token']} µs | (the baseline) |",
                  f"| RSS per held stream, sluice-before | {ratio(w['hold']['sluice-before']['rss_kib_per_stream'], w['hold']['nginx']['rss_kib_per_stream'])} | (the baseline) |"]
    d1, s1 = w["chat-c1"]["direct"], w["chat-c1"]["sluice"]
    d, n100 = w["chat"]["direct"], w["chat"]["nginx"]
    lines += [f"| TTFT p99 added over direct, c=1 | sluice {round(s1['ttft_p99_ms'] - d1['ttft_p99_ms'], 3)} ms, "
              f"nginx {round(w['chat-c1']['nginx']['ttft_p99_ms'] - d1['ttft_p99_ms'], 3)} ms | sluice ≤ 0.2 ms |",
              f"| TTFT p99 added over direct, c=100 | sluice {round(s['ttft_p99_ms'] - d['ttft_p99_ms'], 3)} ms, "
              f"nginx {round(n100['ttft_p99_ms'] - d['ttft_p99_ms'], 3)} ms | within noise of nginx |"]
    m = results["mock_alone"]
    lines += ["", f"Mock alone: {m['streams']} streams held at a token every 20 ms: ends {m['ends']}, stalls {m['stalls']}, "
              f"ITL p50 / p99 {m['itl_p50_ms']} / {m['itl_p99_ms']} ms, {m['cpu_us_per_token']} µs CPU per token, "
              f"{m['rss_kib_per_stream']} KiB per stream. Firehose, mock CPU per token (direct path): "
              f"{w['firehose']['direct']['cpu_us_per_token']} µs."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        results = run()
    finally:
        stop_all()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    table = markdown(results)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(table)
    print(table)
