"""Databases for application tests: ``schemaguard_migrated_database`` against pytest-postgresql.

On a 50-table Alembic project (five revisions of ten tables: serial keys, a foreign key to the
previous table, a unique and a plain index, defaults), it times sessions of N trivial tests
(each runs ``select 1`` on its database):

- **no database**: the same N tests without a database, the floor;
- **ours (own server)**: ``schemaguard_migrated_database``, the plugin starting its own server
  from the cached cluster that holds the template (warm: the cache is built by a first,
  untimed run);
- **ours (DSN)**: the same on an already running server (``--schemaguard-dsn``);
- **pytest-postgresql**: its ``postgresql`` fixture on ``postgresql_noproc`` over the same
  running server, with ``load=[...]`` running ``alembic upgrade head`` into its template
  database (its recommended template way; ``postgresql_proc`` would initdb a cluster, and
  refuses to run as root).

For each: the wall time of the whole ``pytest`` process (median of ``--repeat``), the overhead
per test over the no-database run, and the time from ``pytest_sessionstart`` to the end of
the first test's first query.

    python benchmarks/bench_app_tests.py [--dsn URL] [--tests 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_migrations import benchmark_server  # noqa: E402

TABLES_PER_REVISION = 10
REVISIONS = 5

ENV_PY = """
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config


def run(connection):
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        run(connection)
"""

TIMING_CONFTEST = """
import json, os, time
import pytest

T0 = []
DONE = []


def pytest_sessionstart(session):
    T0.append(time.perf_counter())


@pytest.fixture
def first_query():
    def mark():
        if not DONE:
            DONE.append(1)
            with open(os.environ["BENCH_FIRST_QUERY"], "w") as f:
                json.dump({"seconds": time.perf_counter() - T0[0]}, f)
    return mark
"""

PG_CONFTEST = """
from alembic import command
from alembic.config import Config
from pytest_postgresql import factories


def migrate(host, port, user, dbname, password=None, **kwargs):
    cfg = Config("alembic.ini")
    auth = f"{user}:{password}@" if password else f"{user}@"
    cfg.set_main_option("sqlalchemy.url", f"postgresql+psycopg://{auth}{host}:{port}/{dbname}")
    command.upgrade(cfg, "head")


postgresql_noproc = factories.postgresql_noproc(load=[migrate])
postgresql = factories.postgresql("postgresql_noproc")
"""


def revision(index: int) -> str:
    lines = []
    drops = []
    for t in range(index * TABLES_PER_REVISION, (index + 1) * TABLES_PER_REVISION):
        fk = f', sa.Column("parent_id", sa.Integer, sa.ForeignKey("t{t - 1}.id"))' if t else ""
        lines.append(
            f'    op.create_table("t{t}", sa.Column("id", sa.Integer, primary_key=True), '
            f'sa.Column("name", sa.Text, nullable=False), '
            f'sa.Column("code", sa.String(32), nullable=False, unique=True), '
            f'sa.Column("amount", sa.Numeric(12, 2), server_default="0"), '
            f'sa.Column("created_at", sa.DateTime(timezone=True), '
            f'server_default=sa.text("now()")){fk})\n'
            f'    op.create_index("ix_t{t}_name", "t{t}", ["name"])'
        )
        drops.insert(0, f'    op.drop_table("t{t}")')
    down = repr(f"r{index - 1:04d}") if index else "None"
    return (
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = 'r{index:04d}'\ndown_revision = {down}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade():\n" + "\n".join(lines) + "\n\n\ndef downgrade():\n" + "\n".join(drops) + "\n"
    )


def write_project(root: Path, tests: int) -> dict[str, Path]:
    dirs = {}
    for kind in ("none", "ours", "pytest-postgresql"):
        d = root / kind
        (d / "migrations" / "versions").mkdir(parents=True)
        (d / "alembic.ini").write_text(
            "[alembic]\nscript_location = migrations\npath_separator = os\n"
            "sqlalchemy.url = postgresql+psycopg://nobody@127.0.0.1:1/nowhere\n"
        )
        (d / "migrations" / "env.py").write_text(ENV_PY)
        for i in range(REVISIONS):
            (d / "migrations" / "versions" / f"{i:04d}.py").write_text(revision(i))
        (d / "pyproject.toml").write_text('[tool.schemaguard]\nalembic_config = "alembic.ini"\n')
        conftest = TIMING_CONFTEST + (PG_CONFTEST if kind == "pytest-postgresql" else "")
        (d / "conftest.py").write_text(conftest)
        if kind == "none":
            body = "def test_n(first_query, n):\n    first_query()\n"
        elif kind == "ours":
            body = (
                "import psycopg\n\n\ndef test_n(schemaguard_migrated_database, first_query, n):\n"
                "    with psycopg.connect(schemaguard_migrated_database.dsn) as conn:\n"
                "        conn.execute('select 1')\n    first_query()\n"
            )
        else:
            body = (
                "def test_n(postgresql, first_query, n):\n"
                "    postgresql.execute('select 1')\n    first_query()\n"
            )
        parametrize = f"@pytest.mark.parametrize('n', range({tests}))"
        (d / "test_app.py").write_text(
            "import pytest\n\n" + body.replace("def test_n", f"{parametrize}\ndef test_n")
        )
        dirs[kind] = d
    return dirs


def run_session(directory: Path, args: list[str], tests: int) -> tuple[float, float]:
    out = directory / "first_query.json"
    env = {**os.environ, "BENCH_FIRST_QUERY": str(out), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0 or f"{tests} passed" not in result.stdout:
        raise SystemExit(f"{directory.name} {' '.join(args)} failed:\n{result.stdout[-3000:]}")
    return wall, float(json.loads(out.read_text())["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="PostgreSQL server URL (default: start one)")
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    root = Path(tempfile.mkdtemp(prefix="bench_app_tests_"))
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        dirs = write_project(root, args.tests)
        with benchmark_server(args.dsn) as (url, how):
            print(f"server: {how}", flush=True)
            from sqlalchemy.engine import make_url

            u = make_url(url)
            pg_args = [
                f"--postgresql-host={u.host}",
                f"--postgresql-port={u.port}",
                f"--postgresql-user={u.username}",
                *([f"--postgresql-password={u.password}"] if u.password else []),
                "--postgresql-dbname=bench_pg",
            ]
            variants = {
                "no database": (dirs["none"], []),
                "ours (own server)": (dirs["ours"], []),
                "ours (DSN)": (dirs["ours"], [f"--schemaguard-dsn={url}"]),
                "pytest-postgresql": (dirs["pytest-postgresql"], pg_args),
            }
            # warm the caches: the cluster holding the template, the template on the server
            run_session(dirs["ours"], [], args.tests)
            run_session(dirs["ours"], [f"--schemaguard-dsn={url}"], args.tests)
            for _ in range(args.repeat):
                for name, (directory, extra) in variants.items():
                    results.setdefault(name, []).append(run_session(directory, extra, args.tests))
            _drop_templates(url, dirs["ours"])
    finally:
        _remove_cluster(dirs["ours"]) if "dirs" in locals() else None
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    floor = statistics.median(w for w, _ in results["no database"])
    print(f"\n{args.tests} tests, 50 tables, median of {args.repeat}")
    print(f"load average (1 min) {load_before:.1f} before, {load_after:.1f} after\n")
    print(
        "| session | wall (s) | per test over no database (ms) | session start to first query (s) |"
    )
    print("|---|---:|---:|---:|")
    per_test: dict[str, float] = {}
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        first = statistics.median(f for _, f in runs)
        shown = "-"
        if name != "no database":
            per_test[name] = (wall - floor) / args.tests * 1000
            shown = f"{per_test[name]:.1f}"
        print(f"| {name} | {wall:.2f} | {shown} | {first:.3f} |")
    theirs = per_test.get("pytest-postgresql")
    if theirs:
        for name in ("ours (own server)", "ours (DSN)"):
            if per_test.get(name):
                print(f"pytest-postgresql / {name}, per test: {theirs / per_test[name]:.1f}x")
    return 0


def _drop_templates(url: str, project: Path) -> None:
    """The benchmark's template on the server is of a throwaway project: drop it."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    from pytest_schemaguard.config import Settings
    from pytest_schemaguard.databases.source import locate

    stem = locate(Settings(root=project, alembic_config="alembic.ini")).stem
    u = make_url(url)
    conninfo = psycopg.conninfo.make_conninfo(
        host=u.host or "",
        port=str(u.port or 5432),
        user=u.username or "",
        password=u.password or "",
        dbname=u.database or "postgres",
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "select datname from pg_database where starts_with(datname, %s)", (stem,)
        ).fetchall()
        for (name,) in rows:
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(ident))
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))


def _remove_cluster(project: Path) -> None:
    """The cached cluster holding the throwaway project's template, and its spare copies:
    removed."""
    from pytest_schemaguard.config import Settings
    from pytest_schemaguard.databases.source import locate
    from pytest_schemaguard.server import _runtime_base

    key = locate(Settings(root=project, alembic_config="alembic.ini")).project_key
    base = _runtime_base()
    for path in [
        *base.glob(f"pytest-schemaguard-*/clusters/app-*-{key}-*"),
        *base.glob(f"pytest-schemaguard-*/spares/app-*-{key}-*"),
    ]:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
