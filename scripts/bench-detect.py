#!/usr/bin/env python3
"""Benchmark of detection latency: `backout watch` against a real Prometheus, next to Prometheus'
own alerting on the same signal, measured in the same trials.

Setup (everything on loopback, in a temp dir, torn down at exit):
  exporter    a Python HTTP server serving /metrics with the gauge `demo_error_ratio`:
              0.001 while healthy, 0.2 once the script flips it to failing.
  Prometheus  Debian's /usr/bin/prometheus, scrape_interval 1s, evaluation_interval 5s, one rule:
              alert HighErrorRate, expr `demo_error_ratio > 0.05`, for: 0s.
  backout     a plan whose only criterion is
              { prometheus: "demo_error_ratio", fails_if: "> 0.05", every: 5s, trips_after: 1 },
              with criteria.sources.prometheus.url pointing at that Prometheus; a fresh SQLite store.
Each trial: `backout start PLAN --version vN` opens a new release, `backout watch REL` runs as a
child while the exporter is healthy for a random 5-11 s (seeded, so the flip lands at a
reproducible, random phase of the 5 s cadence), then the exporter flips to failing at t0.
  backout latency   t0 -> the exit of `watch` with code 3 (verdict rollback_required)
                    ("printed" is t0 -> its `verdict: rollback_required` line on stdout).
  Prometheus alert  t0 -> HighErrorRate first seen as `firing` in /api/v1/alerts (polled every
                    100 ms, so up to 0.1 s late).
The exporter then flips back and the next trial waits until the alert has resolved.
Both detectors sample every 5 s at a phase independent of the flip, so each latency is roughly
uniform over [data delay, 5 s + data delay] (data delay: up to 1 s until the next scrape). `watch`
is started within ~20 ms after one of Prometheus' rule evaluations, so backout measures at (nearly)
the same instants as Prometheus evaluates its rule: then both see the same scraped sample, and the
per-trial ratio compares the two detectors' own overheads, not which cadence happened to come
first after the flip (with unrelated phases one trial's ratio can be anything from ~0.1x to ~10x).
Target (issue "Detection latency with the real Prometheus"): backout median <= 7 s over 5 trials.
Environment: BENCH_DETECT_TRIALS (5), BENCH_DETECT_SEED (1), BACKOUT_BIN (target/release/backout).
Exit status: 0 whether or not the target is met; 1 on an error (a trial that did not end with exit
code 3, Prometheus missing or not scraping).
"""
import json, os, random, signal, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BACKOUT_BIN") or os.path.join(ROOT, "target", "release", "backout")
PROMETHEUS = "/usr/bin/prometheus"
TRIALS = int(os.environ.get("BENCH_DETECT_TRIALS", "5"))
SEED = int(os.environ.get("BENCH_DETECT_SEED", "1"))
HEALTHY, FAILING = "0.001", "0.2"
EVERY_S = 5
TARGET_S = 7.0
TRIAL_TIMEOUT_S = 60.0  # after the flip; both detectors should be done within ~6 s
CHILDREN = []  # every process started here, killed at exit


# --- the exporter --------------------------------------------------------------------------------

class Exporter(BaseHTTPRequestHandler):
    value = HEALTHY  # flipped by the benchmark

    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = ("# HELP demo_error_ratio Ratio of failed requests.\n# TYPE demo_error_ratio gauge\n"
                f"demo_error_ratio {Exporter.value}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Prometheus ----------------------------------------------------------------------------------

class Prometheus:
    def __init__(self, tmp, target):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = os.path.join(tmp, "rules.yml")
        with open(rules, "w") as f:
            f.write("groups:\n  - name: bench\n    rules:\n      - alert: HighErrorRate\n"
                    "        expr: demo_error_ratio > 0.05\n        for: 0s\n")
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"global:\n  scrape_interval: 1s\n  evaluation_interval: {EVERY_S}s\n"
                    f"rule_files:\n  - {rules}\n"
                    f"scrape_configs:\n  - job_name: exporter\n    static_configs:\n"
                    f"      - targets: [\"{target}\"]\n")
        self.log = os.path.join(tmp, "prometheus.log")
        with open(self.log, "w") as log:
            self.proc = spawn([PROMETHEUS, f"--config.file={config}",
                               f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
                               f"--web.listen-address=127.0.0.1:{self.port}"],
                              stdout=log, stderr=subprocess.STDOUT)

    def get(self, path, **params):
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.load(r)

    def log_tail(self, n=30):
        with open(self.log, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def check_alive(self):
        if self.proc.poll() is not None:
            fail(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")

    def query(self, expr):
        """The values of an instant query (empty on no data)."""
        data = self.get("/api/v1/query", query=expr)["data"]["result"]
        return [float(s["value"][1]) for s in data]

    def alert_state(self):
        """`firing`, `pending` or None for HighErrorRate."""
        for a in self.get("/api/v1/alerts")["data"]["alerts"]:
            if a["labels"].get("alertname") == "HighErrorRate":
                return a["state"]
        return None

    def last_evaluation(self):
        """When the rule group was last evaluated (Prometheus' own timestamp text)."""
        return [g.get("lastEvaluation") for g in self.get("/api/v1/rules")["data"]["groups"]]

    def wait_until(self, what, done, within, poll=0.1):
        deadline = time.monotonic() + within
        while True:
            self.check_alive()
            try:
                if done():
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                fail(f"prometheus: {what} not reached after {within} s; its log:\n{self.log_tail()}")
            time.sleep(poll)


# --- backout -------------------------------------------------------------------------------------

def plan_yaml(prometheus_url):
    return "\n".join([
        "version: 1",
        'release: { service: bench-detect, version: "2.0.0", rollback_to: "1.9.0", environment: test }',
        "owners: { deployment_engineer: a@example.com }",
        "people: { ops: [a@example.com] }",
        "criteria:",
        f'  sources: {{ prometheus: {{ url: "{prometheus_url}" }} }}',
        "  rollback_when:",
        f'    - {{ id: error-rate, prometheus: "demo_error_ratio", fails_if: "> 0.05", every: {EVERY_S}s, trips_after: 1 }}',
        'window: { not_applicable: "benchmark" }',
        "authorization: { deciders: ops }",
        "execution: { performers: ops }",
        "procedure:",
        "  steps:",
        "    - { id: noop, exec: [/bin/true], expected: 1s, idempotent: true }",
        'contingency: { not_applicable: "benchmark" }',
        "workarounds: []",
        "expected_duration: 1m",
        'communication: { not_applicable: "benchmark" }',
        'testing: { not_applicable: "benchmark" }',
    ]) + "\n"


class Watch:
    """`backout watch REL` as a child: stdout lines with the time each was read, and the exit time."""

    def __init__(self, db, release):
        self.lines = []  # (monotonic, text)
        self.exited_at = None
        self.done = threading.Event()
        self.proc = spawn([BIN, "--database", db, "watch", release],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for raw in self.proc.stdout:
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
        self.proc.wait()
        self.exited_at = time.monotonic()
        self.done.set()

    def first(self, text, after):
        return next((t for t, line in self.lines if t >= after and text in line), None)

    def output(self, since):
        return "\n".join(f"    [{t - since:+7.3f} s] {line}" for t, line in self.lines)


# --- plumbing ------------------------------------------------------------------------------------

def spawn(argv, **kw):
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
    CHILDREN.append(proc)
    return proc


def cleanup():
    for proc in CHILDREN:
        if proc.poll() is None:
            proc.terminate()
    for proc in CHILDREN:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Error(Exception):
    pass


def fail(message):
    raise Error(message)


def backout(db, *args):
    proc = subprocess.run([BIN, "--database", db, *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"backout {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


# --- the benchmark -------------------------------------------------------------------------------

def trial(n, rng, prom, db, plan):
    """One trial: (healthy seconds, backout latency, printed latency, alert latency) or an Error."""
    prom.wait_until("HighErrorRate inactive", lambda: prom.alert_state() is None, 30)
    release = backout(db, "start", plan, "--version", f"v{n}")
    # Start watch right after one of Prometheus' rule evaluations, so that both detectors sample
    # at (nearly) the same instants of the same cadence: see the docstring.
    last = prom.last_evaluation()
    prom.wait_until("the next rule evaluation", lambda: prom.last_evaluation() != last, 2 * EVERY_S + 5, poll=0.02)
    watch = Watch(db, release)
    healthy = rng.uniform(5, 11)
    try:
        return measure(n, healthy, prom, watch)
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
        watch.done.wait(5)


def measure(n, healthy, prom, watch):
    started = time.monotonic()
    if watch.done.wait(healthy):
        fail(f"trial {n}: watch exited with {watch.proc.returncode} before the flip:\n{watch.output(started)}")
    if not watch.first("passing", started):
        fail(f"trial {n}: watch saw no passing measurement in {healthy:.1f} s of healthy data:\n"
             f"{watch.output(started)}")
    Exporter.value = FAILING
    t0 = time.monotonic()
    alert_at = None
    try:
        while time.monotonic() - t0 < TRIAL_TIMEOUT_S:
            if alert_at is None:
                prom.check_alive()
                try:
                    if prom.alert_state() == "firing":
                        alert_at = time.monotonic()
                except OSError:
                    pass
            if alert_at is not None and watch.done.is_set():
                break
            time.sleep(0.1)
    finally:
        Exporter.value = HEALTHY
    if not watch.done.is_set():
        watch.proc.kill()
        watch.done.wait(5)
        fail(f"trial {n}: watch still running {TRIAL_TIMEOUT_S:.0f} s after the flip (killed):\n"
             f"{watch.output(t0)}")
    if watch.proc.returncode != 3:
        fail(f"trial {n}: watch exited with {watch.proc.returncode}, not 3 (rollback_required):\n"
             f"{watch.output(t0)}")
    if alert_at is None:
        fail(f"trial {n}: HighErrorRate not firing {TRIAL_TIMEOUT_S:.0f} s after the flip; "
             f"prometheus log:\n{prom.log_tail()}")
    printed = watch.first("verdict: rollback_required", t0)
    return healthy, watch.exited_at - t0, (printed - t0 if printed else None), alert_at - t0


def main():
    if not os.path.exists(PROMETHEUS):
        print(f"{PROMETHEUS} is missing; install Debian's Prometheus (as root): apt-get install -y prometheus",
              file=sys.stderr)
        return 1
    if not os.path.exists(BIN):
        print("build first: cargo build --release -p backout", file=sys.stderr)
        return 1
    rng = random.Random(SEED)
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as tmp:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        exporter = f"127.0.0.1:{server.server_address[1]}"
        try:
            prom = Prometheus(tmp, exporter)
            began = time.monotonic()
            prom.wait_until("ready", lambda: urllib.request.urlopen(prom.url + "/-/ready", timeout=2).status == 200, 30)
            prom.wait_until("scraping the exporter", lambda: prom.query("demo_error_ratio") == [float(HEALTHY)], 30)
            prom.wait_until("rule HighErrorRate loaded", lambda: any(
                r.get("name") == "HighErrorRate" for g in prom.get("/api/v1/rules")["data"]["groups"]
                for r in g["rules"]), 30)
            version = subprocess.run([PROMETHEUS, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
            print(f"{version.strip()}; ready and scraping after {time.monotonic() - began:.1f} s", file=sys.stderr)

            db = f"sqlite://{os.path.join(tmp, 'bench.db')}"
            plan = os.path.join(tmp, "plan.yaml")
            with open(plan, "w") as f:
                f.write(plan_yaml(prom.url))
            lint = subprocess.run([BIN, "lint", plan], capture_output=True, text=True)
            if lint.returncode != 0:
                fail(f"the benchmark's plan does not lint:\n{lint.stdout}{lint.stderr}")

            for n in range(1, TRIALS + 1):
                try:
                    rows.append((n,) + trial(n, rng, prom, db, plan))
                    _, healthy, b, _, a = rows[-1]
                    print(f"  trial {n} of {TRIALS}: healthy {healthy:.1f} s, backout {b:.2f} s, "
                          f"alert {a:.2f} s", file=sys.stderr, flush=True)
                except Error as e:
                    failures.append(str(e))
                    print(f"  trial {n} of {TRIALS}: FAILED", file=sys.stderr, flush=True)
        except Error as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        finally:
            cleanup()
            server.shutdown()

    print(f"detection latency: exporter flips to failing -> verdict; {TRIALS} trials, seed {SEED}; "
          f"criterion every {EVERY_S}s, trips_after 1; Prometheus scrape 1s, rule evaluation {EVERY_S}s, for 0s")
    print(f"{'trial':>5} {'healthy':>8} | {'backout':>8} {'printed':>8} | {'prom alert':>10} | {'ratio':>7}")
    for n, healthy, b, printed, a in rows:
        p = f"{printed:7.2f}s" if printed is not None else f"{'-':>8}"
        print(f"{n:>5} {healthy:7.2f}s | {b:7.2f}s {p} | {a:9.2f}s | {b / a if a else float('inf'):6.2f}x")
    for message in failures:
        print(f"FAILED: {message}")
    if rows:
        mb = statistics.median(r[2] for r in rows)
        ma = statistics.median(r[4] for r in rows)
        mr = statistics.median(r[2] / r[4] for r in rows if r[4])
        print(f"median over {len(rows)} trials: backout {mb:.2f} s, Prometheus alert {ma:.2f} s; "
              f"ratio of medians {mb / ma:.2f}x, median of ratios {mr:.2f}x")
        print("backout = t0 -> `watch` exited with 3; printed = t0 -> its verdict line; "
              "prom alert = t0 -> HighErrorRate firing in /api/v1/alerts (100 ms polls)")
    if failures or not rows:
        print(f"Target: backout median <= {TARGET_S:.0f} s: MISS ({len(failures)} of {TRIALS} trials failed)")
        return 1
    print(f"Target: backout median <= {TARGET_S:.0f} s: {mb:.2f} s: {'PASS' if mb <= TARGET_S else 'MISS'}")
    return 0


def on_signal(signum, _frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        cleanup()
        print("interrupted", file=sys.stderr)
        sys.exit(130)
