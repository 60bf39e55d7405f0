"""What observing the upgrades (the ``safety[<rev>]`` items) adds to ``pytest --schemaguard``.

A generated project (``gen_alembic_project.py``, 120 revisions by default) is checked with
``pytest --schemaguard -p no:cacheprovider --schemaguard-dsn=<server>``, once with
``--schemaguard-safety=off`` (no safety items, nothing observed) and once with the default
(``warn``: every revision's first upgrade observed, one ``safety`` item per revision), the two
alternating, a few times each, on one server; each run is a fresh Python process timed from
start to exit. The median of each and their ratio are printed, for the wall-clock time and for
the CPU time of the pytest process (user + system, less sensitive to other work on a shared
machine). In the runs with the items, a small plugin (``-p safety_timer``, written into the
project) also adds up the time spent in the observer itself: reading the relations before each
revision (and committing the work before it), and the read after each statement.
``--only-migrations`` runs only the migration items and the safety items (``-k "history or
upgrade or roundtrip or cycle or safety"``), the share the safety observation adds to.

Usage::

    python benchmarks/bench_safety.py [--dsn URL] [--revisions 120] [--repeat 5] [--seed 5]
        [--only-migrations] [--json results.json]

Without ``--dsn`` the plugin's own server machinery starts a server for the benchmark (its start
is not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_migrations import benchmark_server, server_version  # noqa: E402

MIGRATION_ITEMS = "history or upgrade or roundtrip or cycle"

TIMER = """
import time

from pytest_schemaguard.safety import observe

SPENT = {"before": 0.0, "statements": 0.0, "reads": 0}


def _timed(owner, name, key):
    inner = getattr(owner, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            SPENT[key] += time.perf_counter() - start
            if key == "statements":
                SPENT["reads"] += 1

    setattr(owner, name, timed)


_timed(observe.SafetyObserver, "before_upgrade", "before")
_timed(observe.StatementWatch, "read_before", "before")
_timed(observe.StatementWatch, "measure", "statements")


def pytest_unconfigure(config):
    print(
        f"safety-observer: before {SPENT['before']:.3f} s, statements {SPENT['statements']:.3f} s "
        f"({SPENT['reads']} statements measured)"
    )
"""


def run(
    project: Path, server_url: str, safety: str, select: str | None
) -> tuple[float, float, str, str]:
    """(wall seconds, CPU seconds of the pytest process, its summary line, the observer's
    time as the timer plugin printed it)."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--schemaguard",
        "-p",
        "no:cacheprovider",
        "-p",
        "safety_timer",
        "-q",
        f"--schemaguard-dsn={server_url}",
        f"--schemaguard-safety={safety}",
    ]
    if select:
        cmd += ["-k", select]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")]),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = proc.stdout.strip().splitlines()
    summary = next((line for line in reversed(lines) if " in " in line and "passed" in line), "")
    timer = next((line for line in lines if line.startswith("safety-observer:")), "")
    if proc.returncode != 0:
        raise SystemExit(f"pytest failed ({proc.returncode}) with safety={safety}:\n{proc.stdout}")
    return elapsed, cpu, summary, timer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Safety observation benchmark")
    parser.add_argument("--dsn", help="PostgreSQL server URL (default: start one)")
    parser.add_argument("--revisions", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (median reported)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--only-migrations",
        action="store_true",
        help="run only the migration items (and the safety items when on)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_safety_") as tmp:
        project = Path(tmp) / f"project_{args.revisions}"
        subprocess.run(
            [
                sys.executable,
                str(HERE / "gen_alembic_project.py"),
                str(project),
                "--revisions",
                str(args.revisions),
                "--seed",
                str(args.seed),
            ],
            check=True,
            capture_output=True,
        )
        (project / "safety_timer.py").write_text(TIMER)
        with benchmark_server(args.dsn) as (server_url, source):
            print(f"server: {server_version(server_url)} ({source})")
            off_select = MIGRATION_ITEMS if args.only_migrations else None
            on_select = f"{MIGRATION_ITEMS} or safety" if args.only_migrations else None
            run(project, server_url, "off", off_select)  # warm-up: imports, caches
            times: dict[str, list[float]] = {"off": [], "warn": []}
            cpus: dict[str, list[float]] = {"off": [], "warn": []}
            lines: dict[str, str] = {}
            for i in range(args.repeat):
                order = ("off", "warn") if i % 2 == 0 else ("warn", "off")
                for safety in order:
                    select = off_select if safety == "off" else on_select
                    elapsed, cpu, last, timer = run(project, server_url, safety, select)
                    times[safety].append(elapsed)
                    cpus[safety].append(cpu)
                    lines[safety] = last
                    print(
                        f"  run {i + 1} safety={safety}: {elapsed:.2f} s, CPU {cpu:.2f} s  "
                        f"({last}) {timer}",
                        flush=True,
                    )
    print(f"revisions: {args.revisions}, runs: {args.repeat} each")
    for label, values in (("wall", times), ("CPU", cpus)):
        off = statistics.median(values["off"])
        warn = statistics.median(values["warn"])
        print(
            f"{label}: safety=off median {off:.2f} s, safety=warn median {warn:.2f} s, "
            f"added {warn - off:+.2f} s ({(warn / off - 1) * 100:+.1f} %)"
        )
    print(f"off:  {lines['off']}")
    print(f"warn: {lines['warn']}")
    if args.json:
        args.json.write_text(
            json.dumps({"revisions": args.revisions, "wall": times, "cpu": cpus}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
