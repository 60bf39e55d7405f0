"""Migration checks benchmark: pytest-schemaguard vs pytest-alembic vs a raw stairway.

On generated Alembic projects of N revisions (``gen_alembic_project.py``), on one PostgreSQL
server, this times:

- **pytest-alembic**: its ``test_up_down_consistency`` plus the experimental
  ``test_downgrade_leaves_no_trace``, run by pytest in a virtual environment of its own
  (pytest-alembic 0.13 with a pytest below 9.2), each test on a fresh database;
- **ours**: the migration checks, ``pytest --schemaguard -p no:cacheprovider
  --schemaguard-dsn=<server> --schemaguard-safety=off --schemaguard-data-rows=0`` in the project
  (the server is already running, so no server start is measured; ``--own-server`` adds a
  column where the plugin starts its own server too);
- **ours, all checks**: the same without turning off the ``safety[<rev>]`` and ``data[<rev>]``
  items, i.e. everything a plain ``pytest --schemaguard`` runs on the project;
- **raw stairway**: upgrade R, downgrade R, upgrade R for every revision with no checks at
  all, through Alembic's API with one ScriptDirectory and one connection (the floor).

Each is a fresh Python process timed from start to exit (wall clock), with bytecode caches
written and used (an inherited ``PYTHONDONTWRITEBYTECODE`` is dropped); the stairway's process
also reports the time of the migration loop alone. Repetitions are interleaved and the median
is reported.

Usage::

    python benchmarks/bench_migrations.py [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
        [--sizes 10,60,120] [--repeat 3] [--own-server] [--json results.json]

Without ``--dsn`` a throwaway server is started with the plugin's own server machinery.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
PA_VENV = WORK / "pytest-alembic-venv"
PA_REQUIREMENTS = (
    "pytest-alembic>=0.13,<0.14",
    "pytest<9.2",
    "SQLAlchemy>=2,<3",
    "alembic",
    "psycopg[binary]",
)
DB_PREFIX = "bench_"

sys.path.insert(0, str(HERE))
from gen_alembic_project import generate  # noqa: E402

# --------------------------------------------------------------------------- servers, databases


def admin_conninfo(url: str) -> str:
    """A libpq URI for psycopg from a SQLAlchemy URL (driver suffix dropped)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def db_url(server_url: str, dbname: str) -> str:
    """The SQLAlchemy (psycopg 3) URL of ``dbname`` on the server of ``server_url``."""
    from sqlalchemy.engine import make_url

    return (
        make_url(server_url)
        .set(drivername="postgresql+psycopg", database=dbname)
        .render_as_string(hide_password=False)
    )


@contextlib.contextmanager
def scratch_database(server_url: str, kind: str) -> Iterator[str]:
    """A fresh database ``bench_<kind>_<random>``, dropped afterwards; yields its URL."""
    import psycopg
    from psycopg import sql

    name = f"{DB_PREFIX}{kind}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_conninfo(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield db_url(server_url, name)
    finally:
        with psycopg.connect(admin_conninfo(server_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def server_version(server_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_conninfo(server_url), autocommit=True) as conn:
        row = conn.execute("select version()").fetchone()
    return str(row[0]) if row else "?"


@contextlib.contextmanager
def benchmark_server(dsn: str | None) -> Iterator[tuple[str, str]]:
    """(server URL, how it was obtained): the given DSN, or a server the plugin starts."""
    if dsn:
        yield dsn, "given DSN"
        return
    from pytest_schemaguard.config import Settings
    from pytest_schemaguard.session import ServerManager

    manager = ServerManager(Settings(root=Path.cwd()))
    try:
        server = manager.get()
        yield server.url, f"started by pytest-schemaguard ({server.describe()})"
    finally:
        manager.close()


# --------------------------------------------------------------------------- pytest-alembic


def ensure_pytest_alembic_venv() -> dict[str, str]:
    """Create (once) the virtual environment for pytest-alembic; return its package versions."""
    marker = PA_VENV / "requirements.txt"
    wanted = "\n".join(PA_REQUIREMENTS) + "\n"
    python = PA_VENV / "bin" / "python"
    if not (python.is_file() and marker.is_file() and marker.read_text() == wanted):
        print(f"creating {PA_VENV.relative_to(HERE.parent)} for pytest-alembic ...", flush=True)
        subprocess.run(["python3", "-m", "venv", "--clear", str(PA_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             *PA_REQUIREMENTS],
            check=True,
        )  # fmt: skip
        marker.write_text(wanted)
    out = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            "('pytest-alembic', 'pytest', 'SQLAlchemy', 'alembic', 'psycopg')}))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout))


PA_CONFTEST = '''
"""pytest-alembic harness: the generated project's alembic.ini, a fresh database per test."""

import os
import uuid

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

PROJECT = os.environ["BENCH_PROJECT"]
SERVER = make_url(os.environ["BENCH_SERVER_URL"])
ADMIN = SERVER.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def alembic_config():
    return {"file": os.path.join(PROJECT, "alembic.ini")}


@pytest.fixture
def alembic_engine():
    name = "bench_pa_" + uuid.uuid4().hex[:10]
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    url = SERVER.set(drivername="postgresql+psycopg", database=name)
    engine = create_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
'''

PA_INI = """[pytest]
pytest_alembic_tests_path = conftest.py
pytest_alembic_include = up_down_consistency
pytest_alembic_include_experimental = downgrade_leaves_no_trace
"""


def pytest_alembic_harness(size: int) -> Path:
    harness = WORK / "pytest-alembic-harness" / f"rev{size}"
    harness.mkdir(parents=True, exist_ok=True)
    (harness / "conftest.py").write_text(PA_CONFTEST.lstrip())
    (harness / "pytest.ini").write_text(PA_INI)
    return harness


# --------------------------------------------------------------------------- raw stairway


def stairway(project: Path, url: str) -> tuple[float, int]:
    """Upgrade R, downgrade R, upgrade R for every revision; no checks. (seconds, steps)."""
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    started = time.perf_counter()
    config = Config(str(project / "alembic.ini"))
    script = ScriptDirectory.from_config(config)
    order = [r.revision for r in reversed(list(script.walk_revisions()))]
    engine = create_engine(url, poolclass=NullPool)
    steps = 0
    with engine.connect() as connection:

        def run(fn: Any) -> None:
            with EnvironmentContext(config, script, fn=fn) as env:
                env.configure(connection=connection, target_metadata=None)
                with env.begin_transaction():
                    env.run_migrations()

        parent = "base"
        for rev in order:
            for fn in (
                lambda current, _ctx, rev=rev: script._upgrade_revs(rev, current),
                lambda current, _ctx, p=parent: script._downgrade_revs(p, current),
                lambda current, _ctx, rev=rev: script._upgrade_revs(rev, current),
            ):
                run(fn)
                steps += 1
            parent = rev
        connection.commit()
    engine.dispose()
    return time.perf_counter() - started, steps


# --------------------------------------------------------------------------- timing


@dataclass
class Run:
    seconds: float
    ok: bool
    detail: str = ""
    inner: float | None = None


@dataclass
class Row:
    size: int
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, tool: str, inner: bool = False) -> float | None:
        runs = self.runs.get(tool, [])
        values = [(r.inner if inner else r.seconds) for r in runs]
        clean = [v for v in values if v is not None]
        return statistics.median(clean) if clean else None

    def ok(self, tool: str) -> bool:
        return all(r.ok for r in self.runs.get(tool, []))


def timed(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> Run:
    # Bytecode caches are written and used, as in an installed project (the warm-up run
    # compiles the revision files for every tool alike); an inherited PYTHONDONTWRITEBYTECODE
    # would make every process compile the revision files, the editable package and pytest's
    # rewritten plugin modules anew.
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env={**environ, **(env or {})}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    detail = lines[-1] if lines else ""
    run = Run(seconds, proc.returncode == 0, detail)
    if proc.returncode != 0:
        tail = "\n".join(lines[-30:])
        print(f"  !! {' '.join(cmd[:3])} ... exited {proc.returncode}:\n{tail}", flush=True)
    return run


#: What turns off the checks that are not migration checks (the safety and data items), so
#: that "ours" times what pytest-alembic's round-trip tests and the stairway are compared with.
MIGRATION_CHECKS_ONLY = ("--schemaguard-safety=off", "--schemaguard-data-rows=0")


def run_ours(
    project: Path,
    server_url: str,
    *,
    own_server: bool = False,
    every_check: bool = False,
    workers: int = 0,
) -> Run:
    cmd = [sys.executable, "-m", "pytest", "--schemaguard", "-p", "no:cacheprovider", "-q"]
    if not own_server:
        cmd.append(f"--schemaguard-dsn={server_url}")
    if not every_check:
        cmd.extend(MIGRATION_CHECKS_ONLY)
    if workers:
        cmd.extend(["-n", str(workers)])  # pytest-xdist
    return timed(cmd, cwd=project)


def run_pytest_alembic(project: Path, server_url: str, size: int) -> Run:
    harness = pytest_alembic_harness(size)
    cmd = [
        str(PA_VENV / "bin" / "python"),
        "-m",
        "pytest",
        "--test-alembic",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    env = {"BENCH_PROJECT": str(project), "BENCH_SERVER_URL": server_url}
    return timed(cmd, cwd=harness, env=env)


def run_stairway(project: Path, server_url: str) -> Run:
    with scratch_database(server_url, "stair") as url:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--stairway", str(project), url]
        run = timed(cmd, cwd=project)
    if run.ok:
        with contextlib.suppress(ValueError, json.JSONDecodeError):
            run.inner = float(json.loads(run.detail)["seconds"])
    return run


# --------------------------------------------------------------------------- report


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.1f}x"


#: With ``--xdist``: ours and ours with every check again, under ``pytest -n 2``.
XDIST_COLUMNS = {"ours_n2": "ours, -n 2", "ours_all_n2": "ours, all checks, -n 2"}


def render(rows: list[Row], tools: list[str]) -> str:
    head = ["revisions", "pytest-alembic", "ours"]
    if "ours_own" in tools:
        head.append("ours (own server)")
    if "ours_all" in tools:
        head.append("ours, all checks")
    head += [XDIST_COLUMNS[t] for t in XDIST_COLUMNS if t in tools]
    head += [
        "raw stairway",
        "stairway loop",
        "pytest-alembic / ours",
        "ours / raw stairway",
        "ours / stairway loop",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        pa, ours, raw = row.median("pytest_alembic"), row.median("ours"), row.median("stairway")
        loop = row.median("stairway", inner=True)

        def cell(tool: str, value: float | None, row: Row = row) -> str:
            if tool not in tools:
                return "-"
            return fmt(value) + ("" if row.ok(tool) else " (FAILED)")

        cells = [str(row.size), cell("pytest_alembic", pa), cell("ours", ours)]
        if "ours_own" in tools:
            cells.append(cell("ours_own", row.median("ours_own")))
        if "ours_all" in tools:
            cells.append(cell("ours_all", row.median("ours_all")))
        cells += [cell(t, row.median(t)) for t in XDIST_COLUMNS if t in tools]
        cells += [
            cell("stairway", raw),
            fmt(loop),
            ratio(pa, ours),
            ratio(ours, raw),
            ratio(ours, loop),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Migration checks benchmark")
    parser.add_argument("--dsn", help="PostgreSQL server URL (default: start one)")
    parser.add_argument("--sizes", default="10,60,120", help="revision counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--own-server",
        action="store_true",
        help="also time ours starting its own server (no --schemaguard-dsn)",
    )
    parser.add_argument(
        "--tools",
        default="pytest_alembic,ours,ours_all,stairway",
        help="subset of pytest_alembic,ours,ours_all,stairway",
    )
    parser.add_argument(
        "--xdist",
        action="store_true",
        help="also time ours (and ours with every check, if selected) under pytest -n 2",
    )
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    parser.add_argument("--stairway", nargs=2, metavar=("PROJECT", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.stairway:
        seconds, steps = stairway(Path(args.stairway[0]), args.stairway[1])
        print(json.dumps({"seconds": seconds, "steps": steps}))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.own_server:
        tools.append("ours_own")
    if args.xdist:
        tools += [f"{t}_n2" for t in ("ours", "ours_all") if t in tools]
    WORK.mkdir(parents=True, exist_ok=True)
    versions: dict[str, str] = {}
    if "pytest_alembic" in tools:
        versions = ensure_pytest_alembic_venv()

    rows: list[Row] = []
    with benchmark_server(args.dsn) as (server_url, how):
        pg = server_version(server_url)
        print(f"server: {pg.split(',')[0]} ({how})")
        python = sys.version.split()[0]
        print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {python}")
        if versions:
            print("pytest-alembic venv: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        loads = [os.getloadavg()]
        print("load average at the start: " + _load(loads[0]), flush=True)
        for size in sizes:
            project = WORK / "projects" / f"rev{size}"
            generate(project, size, seed=args.seed)
            row = Row(size)
            rows.append(row)
            # Warm-up (untimed): compiles the revision files' bytecode for every tool alike.
            run_stairway(project, server_url)
            for rep in range(args.repeat):
                for tool in tools:
                    if tool == "pytest_alembic":
                        run = run_pytest_alembic(project, server_url, size)
                    elif tool == "ours":
                        run = run_ours(project, server_url)
                    elif tool == "ours_own":
                        run = run_ours(project, server_url, own_server=True)
                    elif tool == "ours_all":
                        run = run_ours(project, server_url, every_check=True)
                    elif tool == "ours_n2":
                        run = run_ours(project, server_url, workers=2)
                    elif tool == "ours_all_n2":
                        run = run_ours(project, server_url, every_check=True, workers=2)
                    elif tool == "stairway":
                        run = run_stairway(project, server_url)
                    else:
                        raise SystemExit(f"unknown tool {tool!r}")
                    row.runs.setdefault(tool, []).append(run)
                    status = "ok" if run.ok else "FAILED"
                    extra = f" (loop {run.inner:.2f}s)" if run.inner is not None else ""
                    print(
                        f"  {size:>4} revisions  rep {rep + 1}  {tool:<15} {run.seconds:7.2f}s"
                        f"{extra}  {status}  {run.detail[:70]}",
                        flush=True,
                    )
        loads.append(os.getloadavg())
    print()
    print(f"median of {args.repeat}, seconds (wall clock of each process, start to exit)")
    print(render(rows, tools))
    print(
        f"load average (1, 5, 15 min): at the start {_load(loads[0])}, at the end {_load(loads[1])}"
    )
    if args.json:
        data = {
            "server": pg,
            "load_average": loads,
            "versions": versions,
            "rows": [
                {"size": r.size, "runs": {t: [vars(x) for x in rs] for t, rs in r.runs.items()}}
                for r in rows
            ],
        }
        args.json.write_text(json.dumps(data, indent=2))
    failed = [(r.size, t) for r in rows for t in r.runs if not r.ok(t)]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
