#!/usr/bin/env python3
"""Benchmark: history never slows the present (issue 16, item 4).

Three SQLite stores: `small` (10 finished runs, each with its steps, journal events and a
delivered notification, 10 closed releases, and one open release whose plan has a `command`
criterion and whose journal holds 10 measurements); `history` (the same with LARGE =
BENCH_HISTORY_RUNS, default 100,000, runs and closed releases); `journal` (small, but the open
release's journal holds LARGE measurements: what `check`, its status and its page replay). History is made by running `backout run` and
`backout check` once and copying their rows in SQL (hashes made unique; the chain of the copies
is not valid, which no measured read checks).

Measured in the same run for both stores (medians of BENCH_RUNS, default 7):
  /metrics              GET on `backout serve`, after the first scrape (which tallies the step
                        events once per server and then reads only new ones); the server reuses an
                        answer for 2 s, so the scrapes are 2.1 s apart.
  /metrics, first       the first scrape of a fresh server (once per size, not a median).
  release page          GET /ui/releases/{id} with a session (the release's journal: SMALL/LARGE
                        measurements).
  status API            GET /api/v1/releases/{id}.
  check                 `backout check REL` (whole process: replays the release's journal, then
                        measures its one criterion, `true`).
The peer is the same figure on the `small` store; the target is a flat cost: <= 1.5x `small`.
"""
import os, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BACKOUT_BIN") or os.path.join(ROOT, "target", "release", "backout")
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
SMALL = 10
LARGE = int(os.environ.get("BENCH_HISTORY_RUNS", "100000"))
FLAT = 1.5

RUN_PLAN = """version: 1
release: { service: hist, version: "2.0.0", rollback_to: "1.9.0", environment: test }
owners: { deployment_engineer: a@example.com }
people: { ops: [a@example.com] }
criteria: { not_applicable: "benchmark" }
window: { not_applicable: "benchmark" }
authorization: { deciders: ops }
execution: { performers: ops }
procedure:
  steps:
    - { id: a, exec: [/bin/true], expected: 1s, idempotent: true }
    - { id: b, needs: [a], exec: [/bin/true], expected: 1s, idempotent: true }
    - { id: c, needs: [b], exec: [/bin/true], expected: 1s, idempotent: true }
contingency: { not_applicable: "benchmark" }
workarounds: []
expected_duration: 1h
communication: { not_applicable: "benchmark" }
testing: { not_applicable: "benchmark" }
"""

RELEASE_PLAN = """version: 1
release: { service: hist, version: "2.0.0", rollback_to: "1.9.0", environment: test }
owners: { deployment_engineer: a@example.com }
people:
  release-managers: [dana@example.com]
  ops: [pat@example.com]
criteria:
  rollback_when:
    - { id: alive, title: Always passes, command: "true", every: 1h }
window: { opens: deploy, closes_after: 30d }
authorization: { deciders: release-managers, quorum: 1 }
execution: { performers: ops, start_within: 1h }
procedure:
  steps:
    - { id: a, exec: [/bin/true], expected: 1s, idempotent: true }
contingency: { not_applicable: "benchmark" }
workarounds: { not_applicable: "benchmark" }
expected_duration: 1h
communication: { not_applicable: "benchmark" }
testing: { not_applicable: "benchmark" }
"""

REASONS = ["rolled back: run r succeeded", "rollback unverified: no hold", "success: held", "closed on time"]


def sh(argv, env):
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 3, 4):
        sys.exit(f"bench-history: {' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return proc.stdout


def build(tmp, n, journal):
    """A store with n finished runs (and their events, deliveries), n closed releases and one
    open release whose journal holds `journal` measurements. Returns (env, release id, counts)."""
    db = os.path.join(tmp, f"store-{n}-{journal}.db")
    env = dict(os.environ, BACKOUT_DATABASE_URL=f"sqlite://{db}", BACKOUT_LOG="warn", BACKOUT_USER="pat@example.com")
    for name, text in (("run.yaml", RUN_PLAN), ("release.yaml", RELEASE_PLAN)):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    # The plan's performer, without a release: break glass, as the people rules require.
    sh([BIN, "--as", "a@example.com", "run", os.path.join(tmp, "run.yaml"), "--break-glass",
        "--reason", "benchmark"], env)
    sh([BIN, "start", os.path.join(tmp, "release.yaml")], env)
    con = sqlite3.connect(db)
    release = con.execute("SELECT id FROM releases WHERE state = 'open'").fetchone()[0]
    sh([BIN, "check", release], env)
    template = con.execute("SELECT id FROM runs").fetchone()[0]
    copies = n - 1
    cte = f"WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < {copies})"
    cols = lambda table: [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
    with con:
        run_cols = cols("runs")
        con.execute(f"{cte} INSERT INTO runs ({', '.join(run_cols)}) SELECT "
                    + ", ".join("'h' || x || '-' || id" if c == "id" else c for c in run_cols)
                    + " FROM runs, k WHERE id = ?", (template,))
        step_cols = cols("step_states")
        con.execute(f"{cte} INSERT INTO step_states ({', '.join(step_cols)}) SELECT "
                    + ", ".join("'h' || x || '-' || run_id" if c == "run_id" else c for c in step_cols)
                    + " FROM step_states, k WHERE run_id = ?", (template,))
        events = con.execute("SELECT COUNT(*), MIN(seq) FROM events WHERE run_id = ?", (template,)).fetchone()
        per_run, first = events
        top = con.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        ev_cols = cols("events")
        con.execute(f"{cte} INSERT INTO events ({', '.join(ev_cols)}) SELECT "
                    + ", ".join({"seq": f"{top} + (x - 1) * {per_run} + (seq - {first}) + 1",
                                 "run_id": "'h' || x || '-' || run_id",
                                 "hash": "hash || '-' || x"}.get(c, c) for c in ev_cols)
                    + " FROM events, k WHERE run_id = ?", (template,))
        # One delivered notification per copied run, on its run_started event.
        con.execute("INSERT INTO deliveries (event_seq, run_id, channel, kind, notify_event, state, "
                    "created_at_ms, delivered_at_ms, updated_at_ms) SELECT seq, run_id, 'ops', 'slack', "
                    "'started', 'delivered', at_ms, at_ms, at_ms FROM events WHERE kind = 'run_started' "
                    "AND run_id LIKE 'h%'")
        rel_cols = cols("releases")
        reasons = " ".join(f"WHEN {i} THEN '{r}'" for i, r in enumerate(REASONS))
        con.execute(f"WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < {n}) "
                    f"INSERT INTO releases ({', '.join(rel_cols)}) SELECT "
                    + ", ".join({"id": "'c' || x || '-' || id", "state": "'closed'",
                                 "closed_at_ms": "opened_at_ms + 1",
                                 "close_reason": f"CASE x % {len(REASONS)} {reasons} END"}.get(c, c) for c in rel_cols)
                    + " FROM releases, k WHERE id = ?", (release,))
        # The open release's own journal: `journal` measurements (copies of the one `check` made).
        m_seq = con.execute("SELECT seq FROM events WHERE release_id = ? AND kind = 'measurement'", (release,)).fetchone()[0]
        top = con.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        cte = f"WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < {journal - 1})"
        con.execute(f"{cte} INSERT INTO events ({', '.join(ev_cols)}) SELECT "
                    + ", ".join({"seq": f"{top} + x", "hash": "hash || '-m' || x"}.get(c, c) for c in ev_cols)
                    + " FROM events, k WHERE seq = ?", (m_seq,))
    counts = [con.execute(q).fetchone()[0] for q in ("SELECT COUNT(*) FROM runs", "SELECT COUNT(*) FROM events",
                                                     "SELECT COUNT(*) FROM releases",
                                                     f"SELECT COUNT(*) FROM events WHERE release_id = '{release}'")]
    con.close()
    return env, release, counts


def serve(env):
    server = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in server.stderr:
        if line.startswith("backout serve: listening on "):
            subprocess.Popen(["cat"], stdin=server.stderr, stdout=subprocess.DEVNULL)
            return server, line.split("listening on ", 1)[1].strip()
    server.kill()
    sys.exit("bench-history: the server did not start")


def get(url, headers):
    request = urllib.request.Request(url, headers=headers)
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        if response.status != 200:
            sys.exit(f"bench-history: GET {url}: {response.status}")
    return time.perf_counter() - start


def timed(argv, env):
    start = time.perf_counter()
    sh(argv, env)
    return time.perf_counter() - start


STORES = [("small", SMALL, SMALL), ("history", LARGE, SMALL), ("journal", SMALL, LARGE)]


def main():
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release -p backout")
    results = {}  # figure -> {store: [seconds]}
    facts = {}
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        for name, n, journal in STORES:
            began = time.perf_counter()
            env, release, counts = build(tmp, n, journal)
            facts[name] = counts
            print(f"  store '{name}' built in {time.perf_counter() - began:.1f} s: {counts[0]} runs, "
                  f"{counts[1]} events, {counts[2]} releases, {counts[3]} events of the open release", file=sys.stderr)
            token = subprocess.run([BIN, "token", "create", "--user", "vic@example.com", "--role", "viewer"],
                                   env=env, capture_output=True, text=True, check=True).stdout.strip()
            server, base = serve(env)
            try:
                bearer = {"Authorization": f"Bearer {token}"}
                cookie = {"Cookie": f"backout_session={token}"}
                results.setdefault("/metrics, first scrape of a server", {})[name] = [get(f"{base}/metrics", {})]
                samples = {"/metrics": [], "release page (UI)": [], "release status (API)": [], "check (process)": []}
                for _ in range(RUNS):
                    time.sleep(2.1)  # past the reuse of the last answer
                    samples["/metrics"].append(get(f"{base}/metrics", {}))
                    samples["release page (UI)"].append(get(f"{base}/ui/releases/{release}", cookie))
                    samples["release status (API)"].append(get(f"{base}/api/v1/releases/{release}", bearer))
                    samples["check (process)"].append(timed([BIN, "check", release], env))
                for k, v in samples.items():
                    results.setdefault(k, {})[name] = v
            finally:
                server.terminate()
                server.wait(timeout=20)
    f = lambda name: f"{facts[name][0]} runs/{facts[name][1]} events/{facts[name][2]} releases, release journal {facts[name][3]}"
    print("Stores (medians of %d; ms; ratio against 'small', target flat <= %.1fx):" % (RUNS, FLAT))
    for name, _, _ in STORES:
        print(f"  {name:8} {f(name)}")
    print(f"{'figure':36} | {'small':>8} | {'history':>8} {'ratio':>7} {'':4} | {'journal':>8} {'ratio':>7}")
    for k, by in results.items():
        small = statistics.median(by["small"])
        cells = []
        for name in ("history", "journal"):
            v = statistics.median(by[name])
            ratio = v / small if small else float("inf")
            cells.append(f"{v * 1000:8.1f} {ratio:6.2f}x {'PASS' if ratio <= FLAT else 'MISS'}")
        print(f"{k:36} | {small * 1000:8.1f} | {cells[0]} | {cells[1]}")
    print("history: more runs, deliveries and closed releases; journal: a longer journal of the open release "
          "(what `check`, the status and the page replay).")


if __name__ == "__main__":
    main()
