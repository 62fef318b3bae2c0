#!/usr/bin/env python3
"""Benchmark of plan-as-code: lint and render of a generated large plan and of the reference plan.

Prints medians of repeated runs (wall time includes GNU time's own start, ~1 ms) (this machine is shared and noisy) next to a peer measured in
the same run: PyYAML's C loader parsing the same file (parse only, in-process, so it pays no
process start-up; backout's numbers are whole processes). Peak memory is the child's max RSS.
Targets (issue 2): lint + render html of 5,000 steps / 500 criteria < 250 ms and < 100 MB;
lint of the reference example < 20 ms.
"""
import os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "backout")
RUNS = int(os.environ.get("BENCH_RUNS", "15"))


def generate(steps: int, criteria: int) -> str:
    out = ["version: 1", "release:", "  service: big", '  version: "2.0.0"', '  rollback_to: "1.9.0"',
           "  environment: production", "  checkpoints: [expand]", "owners:", "  deployment_engineer: a@example.com",
           "people:", "  deciders: [a@example.com, b@example.com]", "  ops: [c@example.com, d@example.com]",
           "criteria:", "  rollback_when:"]
    for i in range(criteria):
        out += [f"    - id: c{i}", f"      title: Criterion {i}",
                f"      prometheus: 'sum(rate(errors_total{{shard=\"{i}\"}}[5m]))'",
                '      fails_if: "> 0.02"', '      passes_if: "<= 0.01"', "      every: 1m", "      trips_after: 2"]
    out += ["  success_when:", "    hold: 1h", "    checks: [c0, c1]",
            "window:", "  closes_after: 30d", "authorization:", "  deciders: deciders", "  quorum: 1",
            "execution:", "  performers: ops", "  start_within: 15m", "procedure:", "  steps:"]
    # 50 parallel chains of 100 steps: a wide, deep DAG.
    for i in range(steps):
        chain, pos = divmod(i, steps // 50)
        out += [f"    - id: s{i}", f"      title: Step {i} of chain {chain}", f'      run: ./bin/undo --part {i}',
                "      expected: 1m", "      timeout: 5m", "      idempotent: true"]
        if pos > 0:
            out.append(f"      needs: [s{i - 1}]")
    out += ["contingency:", '  not_applicable: "generated"', "workarounds: []", "expected_duration: 2h",
            "communication:", "  channels:", '    ops: { slack: "${SLACK}" }', "  notify:", "    completed: [ops]",
            "testing:", "  rehearse_in: staging"]
    return "\n".join(out) + "\n"


def measure(argv):
    """(wall seconds, max RSS bytes) of one run.

    Peak memory comes from GNU time (%M): wait4's ru_maxrss would include the memory of the
    Python process the child was forked from."""
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        code = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", rss.name] + argv,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        if code != 0:
            sys.exit(f"benchmark command failed: {' '.join(argv)}")
        return wall, int(rss.read().split()[-1]) * 1024


def bench(argv):
    results = [measure(argv) for _ in range(RUNS)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def peer(path):
    try:
        import yaml
    except ImportError:
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    times = []
    for _ in range(RUNS):
        with open(path) as f:
            start = time.perf_counter()
            yaml.load(f, Loader=loader)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release -p backout")
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "big.yaml")
        with open(big, "w") as f:
            f.write(generate(5000, 500))
        html = os.path.join(tmp, "big.html")
        ref = os.path.join(ROOT, "fixtures", "plans", "valid", "checkout.yaml")
        rows = [
            ("lint big (5000 steps, 500 criteria)", bench([BIN, "lint", big]), peer(big)),
            ("render --format html big", bench([BIN, "render", big, "--format", "html", "-o", html]), peer(big)),
            ("lint checkout.yaml (reference)", bench([BIN, "lint", ref]), peer(ref)),
            ("backout --version (process start-up)", bench([BIN, "--version"]), None),
        ]
        size = os.path.getsize(big)
    print(f"runs per row: {RUNS}; big plan: {size / 1e6:.2f} MB")
    print(f"{'what':40} {'backout median':>15} {'peak RSS':>10} {'PyYAML C parse':>15} {'ratio':>7}")
    for name, (wall, rss), p in rows:
        ratio = f"{wall / p:6.1f}x" if p else "      -"
        ptxt = f"{p * 1000:12.1f} ms" if p else "             -"
        print(f"{name:40} {wall * 1000:12.1f} ms {rss / 1e6:7.1f} MB {ptxt} {ratio}")
    print(f"render --format html of the big plan (it lints first, so this is lint + render): "
          f"{rows[1][1][0] * 1000:.1f} ms (target < 250 ms); peak {rows[1][1][1] / 1e6:.1f} MB (target < 100 MB)")
    print(f"lint of the reference plan: {rows[2][1][0] * 1000:.1f} ms (target < 20 ms)")


if __name__ == "__main__":
    main()
