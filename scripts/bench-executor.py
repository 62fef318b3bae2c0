#!/usr/bin/env python3
"""Benchmark of the executor: `backout run` next to GNU make, bash and Ansible running the same DAG.

Two workloads, generated identically for every runner:
  (a) chain: 200 `/bin/true` steps, each needing the previous one (per-step overhead);
  (b) layers: 4 layers x 8 steps of `sleep 0.25`, each layer needing the whole previous one
      (scheduling: the ideal makespan is 1.00 s).
Runners:
  backout  `backout run PLAN --format json`, max_parallel 16, steps as `exec: [...]` (argv) and as
           `run: ...` (sh -c); each run on a fresh SQLite file in a tempdir (synchronous=FULL, so
           every state change is fsynced), plus one database reused across runs (warm) and, as a
           diagnostic only, a fresh database on tmpfs (/dev/shm, where fsync costs ~nothing).
  make     GNU `make -j16 -s`, one phony target per step, the same prerequisites; recipes are
           plain commands, so make execs them without a shell.
  floor    make's run followed by the SQLite commits the durability contract needs (per chain step
           one fsynced commit and one WAL-only commit; per layer one of each), through Python's
           sqlite3 in a fresh WAL database beside backout's: what a durable executor cannot avoid
           on this machine (fork+exec as make does it, plus the fsyncs).
  bash     the chain as 200 sequential lines; each layer as 8 `cmd &` then `wait`.
  ansible  ansible-playbook, local connection, no fact gathering, pipelining on. The chain is 200
           `command: /bin/true` tasks on one host. Layers: Ansible runs one task in parallel across
           hosts, not tasks within a host (the free strategy only frees hosts from each other), so
           the inventory has 8 local aliases of this machine and each layer is one `command: sleep
           0.25` task on all 8 (forks 16); the linear strategy's end-of-task barrier is the layer
           dependency. (async/poll 0 + async_status would pay the ~0.3 s module start per step
           serially and poll at >= 1 s, so it is slower; not measured.)
Wall times are whole processes (start-up included), medians of BENCH_RUNS runs (Ansible:
BENCH_ANSIBLE_RUNS, default 1; BENCH_SKIP_ANSIBLE=1 skips it), runners interleaved per repetition
because this machine is shared and noisy. "start-up" is a 1-step chain; "marginal" is
(wall(200) - wall(1)) / 199. For backout, "in-run" is the span between its `run_started` and
`run_finished` JSON events as read from its stdout (excludes process start, plan lint, database
open and migration).
Targets (issue 16): (a) backout <= 1.5x make's wall time; (b) makespan <= 1.02x make's makespan,
both medians of the same run.
"""
import itertools, json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "backout")
VENV = os.path.join(ROOT, "target", "bench-venv")
RUNS = int(os.environ.get("BENCH_RUNS", "11"))
ANSIBLE_RUNS = int(os.environ.get("BENCH_ANSIBLE_RUNS", "1"))
SKIP_ANSIBLE = os.environ.get("BENCH_SKIP_ANSIBLE", "") not in ("", "0")
CHAIN = 200
LAYERS, WIDTH, SLEEP = 4, 8, "0.25"
IDEAL = LAYERS * float(SLEEP)
TARGET_RATIO, TARGET_MAKESPAN = 1.5, 1.02


# --- the same DAG for every runner: a list of (id, needs, argv) --------------------------------

def chain(n):
    return [(f"s{i}", [f"s{i - 1}"] if i else [], ["/bin/true"]) for i in range(n)]


def layers():
    steps = []
    for layer in range(LAYERS):
        prev = [f"l{layer - 1}s{j}" for j in range(WIDTH)] if layer else []
        steps += [(f"l{layer}s{j}", prev, ["/bin/sleep", SLEEP]) for j in range(WIDTH)]
    return steps


def plan_yaml(steps, form):
    out = ["version: 1",
           'release: { service: bench, version: "2.0.0", rollback_to: "1.9.0", environment: test }',
           "owners: { deployment_engineer: a@example.com }", "people: { ops: [a@example.com] }",
           'criteria: { not_applicable: "benchmark" }', 'window: { not_applicable: "benchmark" }',
           "authorization: { deciders: ops }", "execution: { performers: ops }",
           "procedure:", "  max_parallel: 16", "  steps:"]
    for sid, needs, argv in steps:
        action = f"exec: [{', '.join(argv)}]" if form == "exec" else f"run: {' '.join(argv)}"
        dep = f", needs: [{', '.join(needs)}]" if needs else ""
        out.append(f"    - {{ id: {sid}{dep}, {action}, expected: 1s, idempotent: true }}")
    out += ['contingency: { not_applicable: "benchmark" }', "workarounds: []", "expected_duration: 1h",
            'communication: { not_applicable: "benchmark" }', 'testing: { not_applicable: "benchmark" }']
    return "\n".join(out) + "\n"


def makefile(steps):
    needed = {n for _, needs, _ in steps for n in needs}
    sinks = [sid for sid, _, _ in steps if sid not in needed]
    out = [f"all: {' '.join(sinks)}", f".PHONY: all {' '.join(sid for sid, _, _ in steps)}"]
    for sid, needs, argv in steps:
        out += [f"{sid}: {' '.join(needs)}", "\t" + " ".join(argv)]
    return "\n".join(out) + "\n"


def bash_script(steps):
    """Consecutive steps with the same needs form a layer: `cmd &` each, then `wait`; a lone step runs in line."""
    out = ["set -e"]
    for _, group in itertools.groupby(steps, key=lambda s: s[1]):
        group = list(group)
        if len(group) == 1:
            out.append(" ".join(group[0][2]))
        else:
            out += [" ".join(argv) + " &" for _, _, argv in group] + ["wait"]
    return "\n".join(out) + "\n"


def playbook(steps):
    """The chain on one host; layers as one task per layer across WIDTH host aliases."""
    if all(len(needs) <= 1 for _, needs, _ in steps):
        tasks = [(sid, argv) for sid, _, argv in steps]
        hosts = "h0"
    else:
        tasks = [(f"layer{i}", steps[i * WIDTH][2]) for i in range(LAYERS)]
        hosts = "bench"
    out = [f"- hosts: {hosts}", "  gather_facts: false", "  tasks:"]
    for name, argv in tasks:
        out += [f"    - name: {name}", f"      command: {' '.join(argv)}"]
    return "\n".join(out) + "\n"


# --- measuring ---------------------------------------------------------------------------------

class Failed(Exception):
    """A run that did not succeed: shown as FAILED, never as a time."""


def last_line(stderr):
    lines = [l for l in stderr.decode(errors="replace").splitlines() if l.strip()]
    return lines[-1].strip()[:300] if lines else "(no stderr)"


def timed(argv, env=None, cwd=None):
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise Failed(f"exit {proc.returncode}: {last_line(proc.stderr)}")
    return wall, None


def durable_commits(db, steps):
    """The durability contract's SQLite work alone, on the filesystem backout's databases use: per
    step one commit fsynced (its final state with the next step's `running`) and one written to
    the WAL without an fsync (its `step_process`), in WAL mode with synchronous=FULL, through
    Python's sqlite3 (microseconds per statement: the fsyncs are the cost)."""
    import sqlite3
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE IF NOT EXISTS records (step INTEGER, kind TEXT, payload TEXT)")
    payload = "x" * 300
    for i in range(steps):
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO records VALUES (?, 'step_process', ?)", (i, payload))
        con.execute("COMMIT")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO records VALUES (?, 'finished', ?)", (i, payload))
        con.execute("INSERT INTO records VALUES (?, 'running', ?)", (i + 1, payload))
        con.execute("COMMIT")
    con.close()


def timed_floor(makefile_path, cwd, db, steps):
    """make's run followed by the durability contract's commits: the physical floor of a durable
    executor on this machine (fork+exec as make does it, plus the fsyncs the contract needs)."""
    wall, _ = timed(["make", "-j16", "-s", "-f", makefile_path], cwd=cwd)
    start = time.perf_counter()
    durable_commits(db, steps)
    return wall + time.perf_counter() - start, None


def timed_backout(plan, db):
    """(wall, in-run span) of one `backout run`; the span is timed from its JSON events."""
    # The plan's performer runs it outside a rehearsal, so without a release: break glass (one
    # `break_glass` event more per run, as the people rules require).
    argv = [BIN, "--as", "a@example.com", "run", plan, "--break-glass", "--reason", "benchmark",
            "--database", f"sqlite://{db}", "--format", "json"]
    begun = ended = failure = None
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if begun is None and b'"run_started"' in line:
            begun = time.perf_counter()
        elif b'"run_finished"' in line:
            ended = time.perf_counter()
        elif failure is None and b'"step_finished"' in line and b'"succeeded"' not in line:
            event = json.loads(line)
            failure = f"step {event.get('step')} {event.get('state')}: {event.get('detail')}"
    err = proc.stderr.read()
    code = proc.wait()
    wall = time.perf_counter() - start
    if code != 0:
        raise Failed(f"exit {code}: {failure or last_line(err)}")
    return wall, (ended - begun if begun and ended else None)


def find_ansible():
    """ansible-playbook on PATH, or in target/bench-venv (installed there when missing)."""
    if SKIP_ANSIBLE:
        return None, "skipped (BENCH_SKIP_ANSIBLE)"
    found = shutil.which("ansible-playbook")
    venv_bin = os.path.join(VENV, "bin", "ansible-playbook")
    if not found and not os.path.exists(venv_bin):
        print("ansible-playbook missing: installing ansible-core into target/bench-venv", file=sys.stderr)
        ok = subprocess.call([sys.executable, "-m", "venv", VENV]) == 0 and subprocess.call(
            [os.path.join(VENV, "bin", "pip"), "install", "--quiet", "ansible-core"]) == 0
        if not ok:
            return None, "unavailable (pip install ansible-core failed)"
    found = found or venv_bin
    with open(found) as f:
        shebang = f.readline()
    python = shebang[2:].strip() if shebang.startswith("#!") and "python" in shebang else "auto_silent"
    return (found, python), None


def fs_type(path):
    """The file system a path is on (from /proc/mounts), to read fsync costs by."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                _, mount, fs = line.split()[:3]
                if os.path.realpath(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
                    best, kind = mount, fs
    except OSError:
        pass
    return kind


class Runner:
    def __init__(self, name, command, runs):
        self.name, self.command, self.runs = name, command, runs
        self.results = {}  # workload -> list of (wall, in-run)
        self.failures = {}  # workload -> list of messages


def main():
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release -p backout")
    ansible, why_not = find_ansible()
    with tempfile.TemporaryDirectory(prefix="bench-executor-") as tmp, \
            tempfile.TemporaryDirectory(prefix="bench-executor-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as shm:
        workloads = {"start": chain(1), "chain": chain(CHAIN), "layers": layers()}
        files = {}
        for w, steps in workloads.items():
            for name, text in [(f"{w}-exec.yaml", plan_yaml(steps, "exec")), (f"{w}-run.yaml", plan_yaml(steps, "run")),
                               (f"{w}.mk", makefile(steps)), (f"{w}.sh", bash_script(steps)), (f"{w}.yml", playbook(steps))]:
                files[name] = os.path.join(tmp, name)
                with open(files[name], "w") as f:
                    f.write(text)
        inventory = os.path.join(tmp, "inventory.ini")
        with open(inventory, "w") as f:
            f.write("[bench]\n" + "".join(f"h{i} ansible_connection=local ansible_python_interpreter={ansible[1] if ansible else ''}\n"
                                          for i in range(WIDTH)))
        ansible_env = dict(os.environ, ANSIBLE_PIPELINING="True", ANSIBLE_FORKS="16", ANSIBLE_RETRY_FILES_ENABLED="False",
                           ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "ansible-tmp"))
        counter = iter(range(10 ** 9))

        def fresh(form, where=tmp):
            return lambda w: timed_backout(files[f"{w}-{form}.yaml"], os.path.join(where, f"fresh-{next(counter)}.db"))

        warm_db = os.path.join(tmp, "warm.db")
        runners = [
            Runner("backout run (exec, fresh db)", fresh("exec"), RUNS),
            Runner("backout run (run: sh -c, fresh db)", fresh("run"), RUNS),
            Runner("backout run (exec, warm db)", lambda w: timed_backout(files[f"{w}-exec.yaml"], warm_db), RUNS),
            Runner("  diagnostic: exec, fresh db on tmpfs", fresh("exec", shm), RUNS),
            Runner("make -j16", lambda w: timed(["make", "-j16", "-s", "-f", files[f"{w}.mk"]], cwd=tmp), RUNS),
            Runner("  floor: make + the same fsyncs (SQLite)", lambda w: timed_floor(
                files[f"{w}.mk"], tmp, os.path.join(tmp, f"floor-{next(counter)}.db"),
                # a chain commits once per step; a layer's steps finish together: once per layer
                LAYERS if w == "layers" else len(workloads[w])), RUNS),
            Runner("bash (&/wait)", lambda w: timed(["bash", files[f"{w}.sh"]]), RUNS),
        ]
        if ansible:
            runners.append(Runner("ansible-playbook", lambda w: timed(
                [ansible[0], "-i", inventory, files[f"{w}.yml"]], env=ansible_env), ANSIBLE_RUNS))
        # Warm-up (not measured): page cache, the warm database's file and schema.
        for r in runners:
            for w in workloads if r.name != "ansible-playbook" else ():
                try:
                    r.command(w)
                except Failed:
                    pass  # counted when measured
        for rep in range(max(RUNS, ANSIBLE_RUNS)):
            for w in workloads:
                for r in runners:
                    if rep < r.runs:
                        try:
                            r.results.setdefault(w, []).append(r.command(w))
                        except Failed as e:
                            r.failures.setdefault(w, []).append(str(e))
            print(f"  repetition {rep + 1} of {max(RUNS, ANSIBLE_RUNS)} done", file=sys.stderr, flush=True)

    def med(r, w, i=0):
        """Median, or None when any run of this cell failed (a failure is never averaged away)."""
        values = [x[i] for x in r.results.get(w, []) if x[i] is not None]
        return statistics.median(values) if values and not r.failures.get(w) else None

    def cell(r, w, v, digits=1):
        if r.failures.get(w):
            return f"{'FAILED':>8}"
        return f"{v * 1000:8.{digits}f}" if v is not None else f"{'-':>8}"

    def ratio(v, ref):
        return f"{v / ref:7.2f}x" if v is not None and ref else f"{'-':>8}"

    make = next(r for r in runners if r.name.startswith("make"))
    floor = next(r for r in runners if "floor" in r.name)
    floor_chain = med(floor, "chain")
    make_chain = med(make, "chain")
    make_layers = med(make, "layers")
    rows = runners + ([] if ansible else [Runner("ansible-playbook", None, 0)])
    print(f"runs: {RUNS} (ansible: {ANSIBLE_RUNS if ansible else why_not}); CPUs: {os.cpu_count()}; "
          f"databases in {tempfile.gettempdir()} ({fs_type(tempfile.gettempdir())}); times in ms")
    print(f"{'':38} | {f'(a) chain of {CHAIN} x /bin/true':^62} | {f'(b) {LAYERS} layers x {WIDTH} x sleep {SLEEP}':^35}")
    print(f"{'runner':38} | {'wall':>8} {'ms/step':>8} {'vs make':>8} {'start-up':>8} {'marginal':>8} {'in-run':>8} | "
          f"{'makespan':>8} {'vs 1.00s':>8} {'vs make':>8} {'in-run':>8}")
    for r in rows:
        a, s, b = med(r, "chain"), med(r, "start"), med(r, "layers")
        per = a / CHAIN if a is not None else None
        marginal = (a - s) / (CHAIN - 1) if a is not None and s is not None else None
        print(f"{r.name:38} | {cell(r, 'chain', a)} {cell(r, 'chain', per, 2)} {ratio(a, make_chain)} {cell(r, 'start', s)} "
              f"{cell(r, 'chain', marginal, 2)} {cell(r, 'chain', med(r, 'chain', 1))} | "
              f"{cell(r, 'layers', b)} {ratio(b, IDEAL)} {ratio(b, make_layers)} {cell(r, 'layers', med(r, 'layers', 1))}")
    print(f"start-up = a 1-step chain; marginal = (wall({CHAIN}) - wall(1)) / {CHAIN - 1}; "
          "in-run = backout's run_started..run_finished events.")
    for r in rows:
        for w, messages in r.failures.items():
            total = len(messages) + len(r.results.get(w, []))
            print(f"FAILED: {r.name}, {w}: {len(messages)} of {total} runs; first: {messages[0]}")
    print("Targets:")
    for r in runners:
        if r.name.startswith("backout run") and "fresh" in r.name:
            a, b = med(r, "chain"), med(r, "layers")
            if a is None or make_chain is None:
                verdict_a = "MISS (a run failed)"
            else:
                verdict_a = (f"{a * 1000:.1f} ms = {a / make_chain:.2f}x make: "
                             f"{'PASS' if a <= TARGET_RATIO * make_chain else 'MISS'}")
            if b is None or make_layers is None:
                verdict_b = "MISS (a run failed)"
            else:
                inner = med(r, "layers", 1)
                verdict_b = (f"makespan {b:.3f} s = {b / make_layers:.3f}x make's {make_layers:.3f} s"
                             + (f" (in-run {inner:.3f} s)" if inner is not None else "")
                             + f": {'PASS' if b <= TARGET_MAKESPAN * make_layers else 'MISS'}")
            if a is not None and floor_chain:
                verdict_a += f" ({a / floor_chain:.2f}x the floor of make + the same fsyncs)"
            print(f"  {r.name}: (a) target <= {TARGET_RATIO}x make: {verdict_a}; "
                  f"(b) target <= {TARGET_MAKESPAN:.2f}x make: {verdict_b}")

if __name__ == "__main__":
    main()
