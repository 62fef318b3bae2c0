#!/usr/bin/env python3
"""Scale of `backout watch --all`: one process watching N open releases x 5 criteria, each
measured `every: 30s` against a local stub HTTP source, every measurement journaled in SQLite.

Reports the watcher's CPU (% of one core, over whole cadence cycles after the first) and peak
RSS, next to a peer measured in the same run: Prometheus scraping the same number of endpoints
(N x 5 targets on the same stub) at the same 30 s interval. Targets: < 25% of one core and
< 300 MB for 10,000 releases.

    python3 scripts/bench-watch.py [--releases 10000] [--cycles 3] [--no-peer]
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKOUT = os.path.join(ROOT, "target", "release", "backout")
EVERY_S = 30
CRITERIA = 5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stub:
    """A keep-alive HTTP/1.1 server in its own thread: `/c/<n>` answers `{"value": 0.001}` (the
    criteria's JSON source), `/metrics` answers the same number in Prometheus' text format."""

    def __init__(self):
        self.port = free_port()
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self.ready.wait()

    def _serve(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port, backlog=1024)
        )
        self.ready.set()
        self.loop.run_until_complete(server.serve_forever())

    async def _client(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                path = line.split(b" ")[1] if b" " in line else b"/"
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                if path.startswith(b"/metrics"):
                    body = b"stub_value 0.001\n"
                    kind = b"text/plain; version=0.0.4"
                else:
                    body = b'{"value": 0.001}'
                    kind = b"application/json"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: " + kind
                    + b"\r\nContent-Length: " + str(len(body)).encode()
                    + b"\r\n\r\n" + body
                )
                self.requests += 1
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def plan_text(port):
    criteria = "\n".join(
        f'    - {{ id: c{i}, http: {{ url: "http://127.0.0.1:{port}/c/{i}", json_pointer: /value }}, '
        f'fails_if: "> 0.5", every: {EVERY_S}s, timeout: 10s }}'
        for i in range(CRITERIA)
    )
    return f"""version: 1
release: {{ service: bench, version: "2.0.0", rollback_to: "1.9.0", environment: bench }}
owners: {{ deployment_engineer: a@example.com }}
people: {{ ops: [a@example.com] }}
criteria:
  rollback_when:
{criteria}
window: {{ closes_after: 1d }}
authorization: {{ deciders: ops }}
execution: {{ performers: ops }}
procedure: {{ not_applicable: "bench" }}
contingency: {{ not_applicable: "bench" }}
workarounds: []
expected_duration: {{ not_applicable: "bench" }}
communication: {{ not_applicable: "bench" }}
testing: {{ not_applicable: "bench" }}
"""


def proc_stats(pid):
    """(cpu seconds, peak RSS MB) of a process from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    peak = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cpu, peak


def measure(pid, seconds):
    cpu0, _ = proc_stats(pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    cpu1, peak = proc_stats(pid)
    return (cpu1 - cpu0) / (time.monotonic() - t0) * 100, peak


def start_releases(db, plan, count):
    env = dict(os.environ, BACKOUT_DATABASE_URL=f"sqlite://{db}", BACKOUT_USER="bench")

    def one(i):
        out = subprocess.run(
            [BACKOUT, "start", plan, "--version", f"2.0.{i}"],
            env=env, capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"backout start failed: {out.stderr}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - t0


def bench_backout(stub, work, releases, cycles):
    db = os.path.join(work, "bench.db")
    plan = os.path.join(work, "plan.yaml")
    with open(plan, "w") as f:
        f.write(plan_text(stub.port))
    took = start_releases(db, plan, releases)
    print(f"  started {releases} releases in {took:.1f} s (backout start, 4 in parallel)")
    env = dict(os.environ, BACKOUT_DATABASE_URL=f"sqlite://{db}", BACKOUT_USER="bench")
    log = open(os.path.join(work, "watch.log"), "w")
    t0 = time.monotonic()
    requests0 = stub.requests
    watch = subprocess.Popen(
        [BACKOUT, "watch", "--all"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # The first cycle measures everything at once (nothing was measured yet); wait until
        # it is done, then measure whole cycles.
        target = releases * CRITERIA
        while stub.requests - requests0 < target:
            if watch.poll() is not None:
                raise SystemExit(f"watch exited with {watch.returncode}; see {log.name}")
            if time.monotonic() - t0 > EVERY_S * 4:
                raise SystemExit(
                    f"the first round measured only {stub.requests - requests0} of {target}"
                )
            time.sleep(0.2)
        first_round = time.monotonic() - t0
        print(f"  first round of {target} measurements took {first_round:.1f} s (incl. start-up)")
        time.sleep(max(0.0, EVERY_S - first_round))
        requests1 = stub.requests
        cpu, peak = measure(watch.pid, EVERY_S * cycles)
        rate = (stub.requests - requests1) / (EVERY_S * cycles)
        if watch.poll() is not None:
            raise SystemExit(f"watch exited with {watch.returncode}; see {log.name}")
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=30)
    journal = os.path.getsize(db) + os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else os.path.getsize(db)
    return cpu, peak, rate, journal


def bench_prometheus(stub, work, targets, cycles):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("  prometheus is not installed (apt-get install -y prometheus): no peer")
        return None
    sd = os.path.join(work, "targets.json")
    with open(sd, "w") as f:
        json.dump(
            [{"targets": [f"127.0.0.1:{stub.port}"], "labels": {"n": str(i)}} for i in range(targets)],
            f,
        )
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write(
            f"global:\n  scrape_interval: {EVERY_S}s\n  scrape_timeout: 10s\n"
            f"scrape_configs:\n  - job_name: stub\n    file_sd_configs:\n      - files: [{sd}]\n"
        )
    port = free_port()
    log = open(os.path.join(work, "prometheus.log"), "w")
    proc = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={work}/tsdb",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        requests0 = stub.requests
        t0 = time.monotonic()
        while stub.requests - requests0 < targets:
            if proc.poll() is not None:
                raise SystemExit(f"prometheus exited; see {log.name}")
            if time.monotonic() - t0 > EVERY_S * 4:
                break
            time.sleep(0.2)
        requests1 = stub.requests
        cpu, peak = measure(proc.pid, EVERY_S * cycles)
        rate = (stub.requests - requests1) / (EVERY_S * cycles)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return cpu, peak, rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    if not os.access(BACKOUT, os.X_OK):
        raise SystemExit("build first: cargo build --release -p backout")
    target = args.releases * CRITERIA
    print(f"== watch scale: {args.releases} open releases x {CRITERIA} criteria, every {EVERY_S}s "
          f"({target / EVERY_S:.0f} measurements/s expected), {args.cycles} cycles measured ==")
    stub = Stub()
    with tempfile.TemporaryDirectory(prefix="backout-bench-watch-") as work:
        cpu, peak, rate, journal = bench_backout(stub, work, args.releases, args.cycles)
        peer = None if args.no_peer else bench_prometheus(stub, work, target, args.cycles)
    print()
    print(f"{'':32} {'CPU % of a core':>16} {'peak RSS MB':>12} {'requests/s':>11}")
    print(f"{'backout watch --all':32} {cpu:16.1f} {peak:12.1f} {rate:11.0f}")
    if peer:
        pcpu, ppeak, prate = peer
        print(f"{'prometheus, same targets (peer)':32} {pcpu:16.1f} {ppeak:12.1f} {prate:11.0f}")
        print(f"ratio backout/prometheus: CPU {cpu / pcpu:.2f}x, RSS {peak / ppeak:.2f}x")
    print(f"journal after the run: {journal / 1e6:.0f} MB (every measurement is an event)")
    verdict = "PASS" if cpu < 25 and peak < 300 else "MISS"
    print(f"target < 25% of one core and < 300 MB: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
