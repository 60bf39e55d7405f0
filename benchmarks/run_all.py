"""Run every benchmark of docs/performance.md on one PostgreSQL server.

- ``bench_snapshot.py``: ``take_snapshot`` vs SQLAlchemy's ``MetaData.reflect``;
- ``bench_migrations.py``: the migration checks vs pytest-alembic vs a raw stairway;
- ``bench_legacy.py``: the legacy-DDL check on generated files of 1, 10 and 50 MB (time and peak
  memory; it needs no server and runs after the others).

Without ``--dsn`` one throwaway server is started with pytest-schemaguard's own server
machinery and both benchmarks run on it; with ``--dsn`` they run on that server (its user
must be allowed to create databases).

    python benchmarks/run_all.py [--dsn URL] [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_migrations import benchmark_server  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run all benchmarks on one server")
    parser.add_argument("--dsn", help="PostgreSQL server URL (default: start one)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: small sizes, one repetition (numbers not meaningful)",
    )
    args = parser.parse_args(argv)
    snapshot_args = ["--sizes", "20", "--repeat", "1"] if args.quick else []
    migration_args = ["--sizes", "10", "--repeat", "1"] if args.quick else []
    failures = 0
    with benchmark_server(args.dsn) as (url, how):
        print(f"== server: {how}", flush=True)
        for script, extra in (
            ("bench_snapshot.py", [*snapshot_args, "--prefix", "bench_snapshot_"]),
            # --own-server: also time the run in which the plugin starts its own server
            ("bench_migrations.py", [*migration_args, "--own-server"]),
        ):
            print(f"\n== {script}", flush=True)
            cmd = [sys.executable, str(HERE / script), "--dsn", url, *extra]
            failures += subprocess.run(cmd).returncode != 0
    legacy_args = ["--sizes", "1"] if args.quick else []
    print("\n== bench_legacy.py", flush=True)
    cmd = [sys.executable, str(HERE / "bench_legacy.py"), *legacy_args]
    failures += subprocess.run(cmd).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
