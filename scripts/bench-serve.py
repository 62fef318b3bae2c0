#!/usr/bin/env python3
"""Benchmark of `backout serve` on SQLite: release status reads under load (wrk) and the fan-out of
a run's live events to many SSE watchers, each next to a peer measured in the same run.

Setup (loopback, temp dir, torn down at exit): a fresh SQLite store, tokens made by
`backout token create`, `backout serve --listen 127.0.0.1:0` (release build), and a release started
through the API whose plan has a `command` criterion measured every second (so the watcher writes
to the journal while the reads run, as in production).

1. Status reads: `wrk -t2 -cC -dDs --latency` on GET /api/v1/releases/{id} with a viewer's token, for
   each connection count C in BENCH_SERVE_CONNECTIONS (default 16,64), BENCH_SERVE_ROUNDS rounds
   (default 3; medians reported). Peer in the same rounds: wrk on GET /healthz of the same server
   (no authentication, one tiny store query): what this machine and this HTTP stack do for a
   trivial request. Target (issue 7): >= 5,000 req/s with p99 < 20 ms.
2. Live events: the rollback is requested, approved and executed through the API; its first step
   is manual, so the run waits while BENCH_SERVE_WATCHERS (default 500) SSE clients connect to
   GET /api/v1/runs/{id}/events and read its history. Then the step is confirmed and BENCH_SERVE_STEPS
   (default 10) chained `sleep 0.2` steps run. Every client timestamps every journal event as it
   reads it; latency = receive time - the event's `at_ms` (same machine, same clock). Reported:
   per event the time until the last of the watchers had it, and p50/p99/max over all deliveries.
   The clients run in 2 processes of asyncio (Python), whose own reading time is included.
   Peer in the same run: the same clients against a minimal asyncio SSE broadcaster (Python) that
   sends the same number of events, stamped when sent: the floor of the measuring clients.
   Target (issue 7): every watcher receives each step event within 100 ms.

Environment: BACKOUT_BIN (target/release/backout), BENCH_SERVE_SECONDS (10).
Exit status 0 whether or not targets are met; 1 on an error.
"""
import asyncio, json, multiprocessing, os, re, shutil, statistics, subprocess, sys, tempfile, time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BACKOUT_BIN") or os.path.join(ROOT, "target", "release", "backout")
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_SERVE_CONNECTIONS", "16,64").split(",")]
ROUNDS = int(os.environ.get("BENCH_SERVE_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SERVE_SECONDS", "10"))
WATCHERS = int(os.environ.get("BENCH_SERVE_WATCHERS", "500"))
STEPS = int(os.environ.get("BENCH_SERVE_STEPS", "10"))

PLAN = """version: 1
release: {{ service: bench, version: "2.0.0", rollback_to: "1.0.0", environment: bench }}
owners: {{ deployment_engineer: pat@example.com }}
people:
  release-managers: [dana@example.com]
  ops: [pat@example.com]
criteria:
  rollback_when:
    - {{ id: alive, title: Always passes, command: "true", every: 1s }}
window: {{ opens: deploy, closes_after: 4h }}
authorization: {{ deciders: release-managers, quorum: 1 }}
execution: {{ performers: ops, start_within: 1h }}
procedure:
  max_parallel: 4
  steps:
    - {{ id: gate, manual: {{ by: ops, instructions: "Start the measured part." }}, expected: 1m }}
{steps}
contingency: {{ not_applicable: "benchmark" }}
workarounds: {{ not_applicable: "benchmark" }}
expected_duration: 1h
communication: {{ not_applicable: "benchmark" }}
testing: {{ not_applicable: "benchmark" }}
"""


def fail(message):
    print(f"bench-serve: {message}", file=sys.stderr)
    sys.exit(1)


def plan_text():
    steps, previous = [], "gate"
    for i in range(STEPS):
        steps.append(f'    - {{ id: s{i}, needs: [{previous}], run: "sleep 0.2", expected: 1s }}')
        previous = f"s{i}"
    return PLAN.format(steps="\n".join(steps))


def api(base, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        fail(f"{method} {path}: {error.code} {error.read().decode(errors='replace')}")


def wrk(url, connections, token=None):
    command = ["wrk", "-t2", f"-c{connections}", f"-d{SECONDS}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        fail(f"wrk saw {errors.group(1)} error responses from {url}:\n{out}")
    return rate, float(p99.group(1)) * scale


# ---- SSE clients -------------------------------------------------------------------------------

async def sse_client(host, port, path, token, ready, go, results, expect):
    reader, writer = await asyncio.open_connection(host, port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    buffer, seen, readied = b"", {}, False
    loop = asyncio.get_running_loop()
    while len(seen) < expect:
        chunk = await reader.read(65536)
        now = time.time()
        if not chunk:
            break
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            for line in block.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                try:
                    event = json.loads(line[5:])
                except ValueError:
                    continue
                if event.get("kind") == "manual_step_waiting" and not readied:
                    readied = True
                    ready()
                elif (event.get("step_id") or "").startswith("s") and go.is_set():
                    seen[event["seq"]] = (now, event["at_ms"] / 1000.0)
    writer.close()
    results.append(seen)


def watch_process(host, port, path, token, count, expect, ready_queue, go_event, out_queue):
    async def main():
        results, go = [], asyncio.Event()
        ready_count = 0

        def ready():
            nonlocal ready_count
            ready_count += 1
            if ready_count == count:
                ready_queue.put(count)

        async def wait_go():
            while not go_event.is_set():
                await asyncio.sleep(0.01)
            go.set()

        tasks = [asyncio.create_task(sse_client(host, port, path, token, ready, go, results, expect))
                 for _ in range(count)]
        await wait_go()
        done, pending = await asyncio.wait(tasks, timeout=60)
        for task in pending:
            task.cancel()
        out_queue.put([[(recv, at) for recv, at in r.values()] for r in results])

    asyncio.run(main())


def fan_out(host, port, path, token, expect, trigger):
    """Runs WATCHERS clients in 2 processes; calls trigger() once all read the history."""
    ctx = multiprocessing.get_context("fork")
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    halves = [WATCHERS // 2, WATCHERS - WATCHERS // 2]
    processes = [ctx.Process(target=watch_process,
                             args=(host, port, path, token, n, expect, ready, go, out))
                 for n in halves]
    for p in processes:
        p.start()
    for _ in processes:
        ready.get(timeout=120)
    go.set()
    time.sleep(0.2)
    trigger()
    deliveries = []
    for _ in processes:
        for client in out.get(timeout=120):
            deliveries.append(client)
    for p in processes:
        p.join(timeout=10)
    return deliveries


def summarize(deliveries, expect):
    complete = sum(1 for d in deliveries if len(d) >= expect)
    latencies = [(recv - at) * 1000 for d in deliveries for recv, at in d]
    per_event = {}
    for d in deliveries:
        for recv, at in d:
            per_event.setdefault(at, []).append((recv - at) * 1000)
    last = [max(per_event[at]) for at in sorted(per_event)]
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    return {
        "watchers_complete": complete,
        "deliveries": len(latencies),
        "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": latencies[-1],
        "per_event_last_ms_median": statistics.median(last), "per_event_last_ms_max": max(last),
        "per_event_last_ms": last,
    }


async def peer_server(port_holder, started, count, trigger_event):
    """A minimal SSE broadcaster: history line, then `count` events stamped when sent."""
    clients = []

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        writer.write(b'data: {"kind":"manual_step_waiting","seq":1,"at_ms":0}\n\n')
        await writer.drain()
        clients.append(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_holder.value = server.sockets[0].getsockname()[1]
    started.set()
    while not trigger_event.is_set():
        await asyncio.sleep(0.01)
    for i in range(count):
        await asyncio.sleep(0.2)
        data = json.dumps({"kind": "step_succeeded", "seq": 10 + i, "step_id": f"s{i}",
                           "at_ms": time.time() * 1000}).encode()
        for writer in clients:
            writer.write(b"data: " + data + b"\n\n")
        await asyncio.gather(*(w.drain() for w in clients), return_exceptions=True)
    await asyncio.sleep(2)
    server.close()


def run_peer(expect):
    ctx = multiprocessing.get_context("fork")
    port, started, trigger = ctx.Value("i", 0), ctx.Event(), ctx.Event()
    proc = ctx.Process(target=lambda: asyncio.run(peer_server(port, started, expect, trigger)))
    proc.start()
    started.wait(10)
    deliveries = fan_out("127.0.0.1", port.value, "/events", None, expect, trigger.set)
    proc.join(timeout=30)
    return deliveries


def main():
    if not os.path.exists(BIN):
        fail(f"{BIN} is missing: cargo build --release -p backout")
    if not shutil.which("wrk"):
        fail("wrk is missing: apt-get install -y wrk")
    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    env = dict(os.environ, BACKOUT_DATABASE_URL=f"sqlite://{tmp}/store.db", BACKOUT_LOG="warn")
    tok = lambda user, role: subprocess.run([BIN, "token", "create", "--user", user, "--role", role],
                                            env=env, capture_output=True, text=True, check=True).stdout.strip()
    viewer, pat, dana = tok("vic@example.com", "viewer"), tok("pat@example.com", "performer"), tok("dana@example.com", "decider")
    server = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = None
        for line in server.stderr:
            if line.startswith("backout serve: listening on "):
                base = line.split("listening on ", 1)[1].strip()
                break
        if not base:
            fail("the server did not start")
        subprocess.Popen(["cat"], stdin=server.stderr, stdout=subprocess.DEVNULL)
        release = api(base, "POST", "/api/v1/releases", pat, {"plan": plan_text()})["id"]
        time.sleep(3)  # a few measurements in the journal
        print(f"backout serve on SQLite, {os.cpu_count()} cores; release {release}; wrk {SECONDS}s x {ROUNDS} rounds (medians)")
        print(f"{'connections':>11} | {'status reads/s':>14} | {'p99 ms':>7} | {'peer /healthz/s':>15} | {'p99 ms':>7} | ratio")
        for c in CONNECTIONS:
            rows = [(wrk(f"{base}/api/v1/releases/{release}", c, viewer), wrk(f"{base}/healthz", c)) for _ in range(ROUNDS)]
            rate = statistics.median(r[0][0] for r in rows)
            p99 = statistics.median(r[0][1] for r in rows)
            peer = statistics.median(r[1][0] for r in rows)
            peer_p99 = statistics.median(r[1][1] for r in rows)
            verdict = "PASS" if rate >= 5000 and p99 < 20 else "MISS"
            print(f"{c:>11} | {rate:>14.0f} | {p99:>7.2f} | {peer:>15.0f} | {peer_p99:>7.2f} | {rate / peer:.2f}x  {verdict} (>= 5000/s, p99 < 20 ms)")

        api(base, "POST", f"/api/v1/releases/{release}/request", pat, {"reason": "bench"})
        api(base, "POST", f"/api/v1/releases/{release}/decisions", dana, {"decision": "approve", "reason": "bench"})
        run = api(base, "POST", f"/api/v1/releases/{release}/execute", pat, {})["run_id"]
        deadline = time.time() + 30
        while time.time() < deadline:
            steps = api(base, "GET", f"/api/v1/runs/{run}", viewer)["steps"]
            if any(s["step_id"] == "gate" and s["state"] == "waiting_manual" for s in steps):
                break
            time.sleep(0.1)
        host, port = base.replace("http://", "").split(":")
        # Each chained step journals step_started and step_succeeded.
        expect = 2 * STEPS
        confirm = lambda: api(base, "POST", f"/api/v1/runs/{run}/steps/gate/confirm", pat, {})
        ours = summarize(fan_out(host, int(port), f"/api/v1/runs/{run}/events", viewer, expect, confirm), expect)
        peer = summarize(run_peer(STEPS), STEPS)
        print(f"\n{WATCHERS} SSE watchers of one run, {expect} step events each (latency = receive - event time)")
        for name, s in (("backout serve", ours), ("peer: asyncio broadcaster", peer)):
            print(f"  {name:<26} complete {s['watchers_complete']}/{WATCHERS}, deliveries {s['deliveries']}, "
                  f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms; "
                  f"per event, last watcher: median {s['per_event_last_ms_median']:.1f} ms, worst {s['per_event_last_ms_max']:.1f} ms")
        print("  backout serve, per event in order, ms until the last watcher had it: "
              + " ".join(f"{v:.0f}" for v in ours["per_event_last_ms"]))
        verdict = "PASS" if ours["watchers_complete"] == WATCHERS and ours["max_ms"] <= 100 else "MISS"
        print(f"  target: every watcher gets each step event within 100 ms: {verdict}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
