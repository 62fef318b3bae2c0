#!/usr/bin/env python3
"""Benchmark: `backout criteria backtest` of 14 days at 1m for 5 criteria (issue 19).

History: 15 days of five gauges at one sample a minute (sine waves with noise), backfilled with
`promtool tsdb create-blocks-from openmetrics` and served by a real `prometheus` on that data.
The plan has five Prometheus criteria, one per gauge, each `every: 1m`.

Measured in the same run against the same Prometheus (medians of BENCH_RUNS, default 5):
  backout   `backout criteria backtest PLAN --since 14d --format json` (whole process: lint the
            plan, fetch 5 x 20,161 steps in chunks of 10,000 with query_range, replay, print).
  peer      a minimal Python script (urllib + json): the same query_range requests in the same
            chunks, parsed into (time, value) lists, nothing else: no evaluation at all.
The ratio backout / peer says what the replay and the tool cost on top of fetching the history.
"""
import json, math, os, random, shutil, socket, statistics, subprocess, sys, tempfile, time
import urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BACKOUT_BIN") or next(
    (p for p in (os.path.join(ROOT, "target", d, "backout") for d in ("release", "debug"))
     if os.path.exists(p)),
    None,
)
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
DAYS = 14
STEP = 60
CHUNK = 10_000
GAUGES = ["errors", "latency", "saturation", "queue", "drops"]

PLAN = """version: 1
release: {{ service: bench, version: "2", rollback_to: "1", environment: production }}
owners: {{ deployment_engineer: a@example.com }}
people: {{ ops: [a@example.com] }}
criteria:
  sources: {{ prometheus: {{ url: "{url}" }} }}
  rollback_when:
{criteria}
window: {{ closes_after: 4h }}
authorization: {{ deciders: ops }}
execution: {{ performers: ops }}
procedure: {{ not_applicable: "benchmark" }}
contingency: {{ not_applicable: "benchmark" }}
workarounds: []
expected_duration: {{ not_applicable: "benchmark" }}
communication: {{ not_applicable: "benchmark" }}
testing: {{ not_applicable: "benchmark" }}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def backfill(dir, now):
    start = (now - (DAYS + 1) * 86400) // 3600 * 3600
    rnd = random.Random(19)
    lines = []
    for g in GAUGES:
        lines.append(f"# TYPE bench_{g} gauge")
        for j in range((DAYS + 1) * 1440 - 60):
            t = start + j * STEP
            v = 1 + math.sin(j / 300) + rnd.random() * 0.2
            lines.append(f"bench_{g}{{job=\"bench\"}} {v:.4f} {t}")
    lines.append("# EOF")
    path = os.path.join(dir, "history.om")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    data = os.path.join(dir, "data")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", path, data],
                   check=True, stdout=subprocess.DEVNULL)
    return data


def start_prometheus(dir, data):
    config = os.path.join(dir, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: 1m\n")
    port = free_port()
    log = open(os.path.join(dir, "prometheus.log"), "w")
    proc = subprocess.Popen(["prometheus", f"--config.file={config}",
                             f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=30d",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/-/ready", timeout=2).status == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("prometheus did not become ready; see " + log.name)


def peer(url, queries, start, end):
    """The minimal client: chunked query_range, JSON parsed into (time, value) lists."""
    total = 0
    for q in queries:
        at = start
        while at <= end:
            to = min(at + (CHUNK - 1) * STEP, end)
            qs = urllib.parse.urlencode({"query": q, "start": at, "end": to, "step": STEP})
            body = json.load(urllib.request.urlopen(f"{url}/api/v1/query_range?{qs}", timeout=120))
            for series in body["data"]["result"]:
                total += len([(float(t), float(v)) for t, v in series["values"]])
            at = to + STEP
    return total


def median_time(fn):
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    if not BIN:
        sys.exit("no backout binary: cargo build --release -p backout (or set BACKOUT_BIN)")
    for tool in ("promtool", "prometheus"):
        if not shutil.which(tool):
            sys.exit(f"{tool} missing: apt-get install -y prometheus")
    now = int(time.time())
    with tempfile.TemporaryDirectory() as dir:
        data = backfill(dir, now)
        proc, url = start_prometheus(dir, data)
        try:
            queries = [f'bench_{g}{{job="bench"}}' for g in GAUGES]
            criteria = "\n".join(
                f"    - {{ id: {g}, prometheus: '{q}', fails_if: \"> 1.9\", every: 1m, trips_after: 2 }}"
                for g, q in zip(GAUGES, queries))
            plan = os.path.join(dir, "plan.yaml")
            with open(plan, "w") as f:
                f.write(PLAN.format(url=url, criteria=criteria))
            end = now // STEP * STEP
            start = end - DAYS * 86400
            to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
            cmd = [BIN, "criteria", "backtest", plan, "--since", f"{DAYS}d", "--to", to,
                   "--format", "json"]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            report = json.loads(out)
            measured = sum(c["measurements"] for c in report["criteria"])
            points = peer(url, queries, start, end)
            ours = median_time(lambda: subprocess.run(cmd, check=True, capture_output=True))
            theirs = median_time(lambda: peer(url, queries, start, end))
            print(f"binary: {BIN}")
            print(f"history: {len(GAUGES)} criteria x {DAYS}d at 1m = {measured} measurements "
                  f"(peer read {points} points)")
            print(f"backout criteria backtest  median {ours * 1000:8.1f} ms")
            print(f"peer (python urllib)       median {theirs * 1000:8.1f} ms")
            print(f"ratio backout/peer         {ours / theirs:.2f}x")
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
