#!/usr/bin/env python3
"""Failover time of `backout serve` replicas sharing one PostgreSQL database.

Each trial creates a database of its own, starts two replicas on loopback ports with a short
lease (BACKOUT_LEASE_TTL), starts a rollback with a long step through the API, SIGKILLs the
replica holding the run's lease, and measures the time from the kill to the first event the
other replica writes for the run (its `run_resumed`, which names the replica in its payload).
Prints each trial and the median.

    cargo build -p backout
    scripts/bench-failover.py --trials 5 --ttl 3s

Needs `psql` and a PostgreSQL server the user can create databases on (BACKOUT_TEST_POSTGRES_URL,
by default postgres://postgres@127.0.0.1:5432/postgres, as the tests).
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PLAN = """version: 1
release: {service: svc, version: "2.0.0", rollback_to: "1.9.0", environment: test}
owners: {deployment_engineer: owner@example.com}
people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
criteria: { not_applicable: "failover benchmark" }
window: { closes_after: 1h }
authorization: { deciders: release-managers, quorum: 1 }
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: slow, run: "sleep 30", idempotent: true, expected: 30s }
contingency: { not_applicable: "failover benchmark" }
workarounds: { not_applicable: "failover benchmark" }
expected_duration: { not_applicable: "failover benchmark" }
communication: { not_applicable: "failover benchmark" }
testing: { not_applicable: "failover benchmark" }
"""


def psql(url, sql):
    out = subprocess.run(
        ["psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def call(base, method, path, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


class Replica:
    def __init__(self, binary, url, ttl, work):
        env = dict(os.environ, BACKOUT_DATABASE_URL=url, BACKOUT_LEASE_TTL=ttl, BACKOUT_LOG="info", WORK=work)
        self.process = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.base = None
        found = threading.Event()

        def read():
            for line in self.process.stderr:
                if line.startswith("backout serve: listening on "):
                    self.base = line.split("listening on ", 1)[1].strip()
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60):
            self.stop()
            sys.exit("a replica did not start")

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def trial(binary, admin_url, ttl):
    name = "backout_bench_%d_%d" % (os.getpid(), time.time_ns() % 10**9)
    psql(admin_url, "CREATE DATABASE " + name)
    url = re.sub(r"/[^/]*$", "/" + name, admin_url)
    replicas = []
    try:
        with tempfile.TemporaryDirectory() as work:
            env = dict(os.environ, BACKOUT_DATABASE_URL=url)

            def token(user, role):
                out = subprocess.run(
                    [binary, "token", "create", "--user", user, "--role", role],
                    env=env, cwd=work, check=True, capture_output=True, text=True,
                )
                return out.stdout.strip()

            performer = token("erin@example.com", "performer")
            decider = token("carol@example.com", "decider")
            replicas = [Replica(binary, url, ttl, work) for _ in range(2)]
            base = replicas[0].base
            release = call(base, "POST", "/api/v1/releases", performer, {"plan": PLAN, "version": "2.0.1"})["id"]
            call(base, "POST", "/api/v1/releases/%s/request" % release, performer, {"reason": "bench"})
            call(base, "POST", "/api/v1/releases/%s/decisions" % release, decider,
                 {"decision": "approve", "reason": "bench"})
            run = call(base, "POST", "/api/v1/releases/%s/execute" % release, performer)["run_id"]
            deadline = time.time() + 60
            while psql(url, "SELECT state FROM step_states WHERE run_id = '%s' AND step_id = 'slow'" % run) != "running":
                if time.time() > deadline:
                    sys.exit("the step never ran")
                time.sleep(0.05)
            holder = psql(url, "SELECT owner FROM leases WHERE name = 'run:%s'" % run)
            pid = int(holder.split(":")[1])
            victim = next(r for r in replicas if r.process.pid == pid)
            killed_ms = time.time_ns() // 1_000_000
            os.kill(pid, signal.SIGKILL)
            victim.process.wait()
            deadline = time.time() + 120
            while True:
                at = psql(
                    url,
                    "SELECT min(at_ms) FROM events WHERE run_id = '%s' AND kind = 'run_resumed' "
                    "AND payload::jsonb ->> 'replica' <> '%s'" % (run, holder),
                )
                if at:
                    return int(at) - killed_ms
                if time.time() > deadline:
                    sys.exit("no replica took the run over")
                time.sleep(0.01)
    finally:
        for replica in replicas:
            replica.stop()
        psql(admin_url, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--ttl", default="3s", help="BACKOUT_LEASE_TTL of the replicas")
    parser.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "target", "debug", "backout"))
    parser.add_argument("--admin-url", default=os.environ.get(
        "BACKOUT_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    times = []
    for n in range(args.trials):
        ms = trial(os.path.abspath(args.binary), args.admin_url, args.ttl)
        times.append(ms)
        print("trial %d: failover %d ms (SIGKILL -> run_resumed by the other replica)" % (n + 1, ms), flush=True)
    print("lease ttl %s: median failover %d ms over %d trials (min %d, max %d)" % (
        args.ttl, statistics.median(times), len(times), min(times), max(times)))


if __name__ == "__main__":
    main()
