"""Safe on any server: timeouts, no password in any output, leftovers reaped, one-line
start-up failures. Inner pytest runs against the suite's real PostgreSQL."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from migration_projects import CLEAN, Rev, run_checks, write_project

# Imported here, not first inside a pytester test: pytester removes the modules a test imported
# when it ends, and SQLAlchemy imported again beside its old classes breaks.
from sqlalchemy import Column, Integer, MetaData, Table

from pytest_schemaguard.server import (
    PostgresServer,
    owner_comment,
    process_start,
    reap_databases,
    reap_orphans,
)
from pytest_schemaguard.timeouts import CONNECT_TIMEOUT, Watchdog, connect_timeout

pytest_plugins = ["pytester"]


def esc(pattern: str) -> str:
    """An fnmatch pattern matching ``[`` and ``]`` literally (node ids have them)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(ch, ch) for ch in pattern)


def _databases(server: PostgresServer) -> dict[str, str | None]:
    with server.admin() as conn:
        rows = conn.execute(
            "select datname, shobj_description(oid, 'pg_database') from pg_database"
        ).fetchall()
    return {str(name): comment for name, comment in rows}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- timeouts

HANGING = Rev(
    "8c1e5a2f9b63",
    "3f2a9c1b7d40",
    "add status",
    'op.execute("select pg_sleep(600)")',
    'op.execute("select 1")',
)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_hanging_revision_fails_within_step_timeout_naming_it(
    pytester: pytest.Pytester, inner_dsn: str, xdist: list[str]
) -> None:
    write_project(pytester.path, [CLEAN[0], HANGING, CLEAN[2]])
    started = time.monotonic()
    result = run_checks(pytester, inner_dsn, "-v", "-rf", "--schemaguard-step-timeout=2", *xdist)
    elapsed = time.monotonic() - started
    result.assert_outcomes(passed=3, failed=1, skipped=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([esc("FAILED alembic.ini::upgrade[8c1e5a2f9b63-add_status]*")])
    result.stdout.fnmatch_lines(
        [
            "upgrade of 8c1e5a2f9b63 (add status) failed",
            "file: migrations/versions/0001_8c1e5a2f9b63.py",
            "at:   0001_8c1e5a2f9b63.py:*: op.execute(*",
            "SQL:",
            "    select pg_sleep(600)",
            "error:",
            "    exceeded step_timeout = 2 s: the statement was cancelled on the server",
            "    QueryCanceled: canceling statement due to user request",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    # one step of 2 s, plus an inner pytest run on two shared cores
    assert elapsed < 2 + 25, f"the run took {elapsed:.0f} s"


PROJECTS = Path(__file__).resolve().parent / "data" / "projects"


@pytest.mark.parametrize(
    ("project", "revision", "upgrade"),
    [
        ("async_accounts", "a1c0ffee0002", "    account_status.create(op.get_bind())\n"),
        ("psycopg2_settings", "b2d0c0de0002", '    op.add_column("settings", sa.Column("flag",'),
    ],
    ids=["asyncpg", "psycopg2"],
)
def test_step_timeout_cancels_a_step_on_the_projects_own_driver(
    pytester: pytest.Pytester, inner_dsn: str, project: str, revision: str, upgrade: str
) -> None:
    shutil.copytree(PROJECTS / project, pytester.path, dirs_exist_ok=True)
    (path,) = (pytester.path / "migrations" / "versions").glob("0002_*.py")
    source = path.read_text()
    assert upgrade in source
    path.write_text(source.replace(upgrade, '    op.execute("select pg_sleep(600)")\n' + upgrade))
    started = time.monotonic()
    result = run_checks(
        pytester, inner_dsn, "-k", f"upgrade and {revision}", "--schemaguard-step-timeout=2"
    )
    assert time.monotonic() - started < 2 + 25
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"upgrade of {revision} (*) failed",
            "SQL:",
            "    select pg_sleep(600)",
            "error:",
            "    exceeded step_timeout = 2 s: the statement was cancelled on the server",
            "    *canceling statement due to user request*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_step_timeout_zero_guards_nothing() -> None:
    watch = Watchdog(0, "dbname=nowhere", pid=1)
    with watch:
        time.sleep(0.05)
    assert not watch.active and not watch.fired


def test_the_watchdog_cancels_one_statement_on_the_server(
    schemaguard_postgres: PostgresServer,
) -> None:
    db = schemaguard_postgres.create_database()
    try:
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            pid = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            started = time.monotonic()
            with (
                pytest.raises(psycopg.errors.QueryCanceled),
                Watchdog(1, db.dsn, pid=pid) as watch,
            ):
                conn.execute("select pg_sleep(60)")
            assert time.monotonic() - started < 10
            assert watch.fired
            # the connection goes on working: the cancel hit that one statement
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        schemaguard_postgres.drop_database(db)


@pytest.fixture
def locked_orders(schemaguard_postgres: PostgresServer) -> Iterator[tuple[str, str, str]]:
    """A scratch database where another transaction is creating ``orders`` and holds on:
    a ``CREATE TABLE orders`` there waits for it. (dsn, url, name)"""
    db = schemaguard_postgres.create_database()
    try:
        with psycopg.connect(db.dsn) as blocker:
            blocker.execute("create table orders (id int)")  # left uncommitted
            yield db.dsn, db.url, db.name
            blocker.rollback()
    finally:
        schemaguard_postgres.drop_database(db)


def test_models_create_all_past_step_timeout_is_cancelled_on_the_server(
    locked_orders: tuple[str, str, str],
) -> None:
    from pytest_schemaguard.parity.orm import ModelsError, create_models

    _, url, _ = locked_orders
    metadata = MetaData()
    Table("orders", metadata, Column("id", Integer, primary_key=True))
    started = time.monotonic()
    with pytest.raises(ModelsError) as raised:
        create_models(url, metadata, step_timeout=1)
    assert time.monotonic() - started < 10
    lines = str(raised.value).splitlines()
    assert lines[0] == (
        "creating the models (metadata.create_all) failed: exceeded step_timeout = 1 s: "
        "the statement was cancelled on the server"
    )
    assert lines[1] == "    QueryCanceled: canceling statement due to user request"
    assert lines[2].startswith("    SQL: CREATE TABLE orders (")


def test_a_baseline_replay_past_step_timeout_is_cancelled_on_the_server(
    locked_orders: tuple[str, str, str],
) -> None:
    from pytest_schemaguard.parity.baseline import plan_replay, run_plan

    dsn, _, name = locked_orders
    plan = plan_replay(
        "CREATE SCHEMA extra;\n\nCREATE TABLE public.orders (\n    id integer\n);\n",
        file="schema.sql",
    )
    started = time.monotonic()
    # as the baseline item runs it: the watchdog cancels what runs in the scratch database
    with Watchdog(1, dsn, database=name) as watch:
        report = run_plan(plan, dsn)
    assert time.monotonic() - started < 10
    assert watch.fired
    (problem,) = report.problems
    assert problem.line == 3
    assert "CREATE TABLE public.orders" in problem.render()
    assert "QueryCanceled: canceling statement due to user request" in problem.render()


class _SilentServer:
    """Accepts TCP connections and never answers (a firewall, a hung host)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read from, never answered

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[_SilentServer]:
    server = _SilentServer()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("limit", [None, "2"], ids=["default-10s", "PGCONNECT_TIMEOUT=2"])
def test_a_dsn_host_that_never_answers_fails_at_start_up(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    silent_server: _SilentServer,
    limit: str | None,
) -> None:
    if limit is None:
        monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("PGCONNECT_TIMEOUT", limit)
    seconds = int(limit or CONNECT_TIMEOUT)
    pytester.makepyfile("def test_x(): pass")
    dsn = f"postgresql://app:hung-host-pw@127.0.0.1:{silent_server.port}/appdb"
    started = time.monotonic()
    result = pytester.runpytest_subprocess("--schemaguard", f"--schemaguard-dsn={dsn}")
    elapsed = time.monotonic() - started
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: schemaguard: cannot connect to --schemaguard-dsn "
            f"postgresql://app:***@127.0.0.1:{silent_server.port}/appdb: *connection timeout "
            f"expired (no answer within {seconds} s; PGCONNECT_TIMEOUT changes the limit). "
            "Check that the server is running*"
        ]
    )
    assert silent_server.accepted, "the run never reached the host"
    assert seconds <= elapsed < seconds + 15, f"failed after {elapsed:.1f} s"
    out = result.stdout.str() + result.stderr.str()
    assert "hung-host-pw" not in out
    assert "Traceback" not in out


def test_connect_timeout_defaults_to_10_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    assert connect_timeout() == 10
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "3")
    assert connect_timeout() == 3
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "soon")
    assert connect_timeout() == 10


# --------------------------------------------------------------------------- secrets

FAILING = Rev(
    "d07b4e6c2a15",
    "8c1e5a2f9b63",
    "index status",
    'op.execute("ALTER TABLE orders ADD COLUMN state order_status_typo")',
    'op.execute("select 1")',
)

APP_TEST = """
import warnings


def test_shows_everything(schemaguard_settings, schemaguard_database, schemaguard_postgres):
    warnings.warn(f"settings are {schemaguard_settings!r}; database {schemaguard_database}")
    assert (schemaguard_settings, schemaguard_database, schemaguard_postgres) == ()
"""


def test_reprs_and_errors_mask_the_password(tmp_path: Path) -> None:
    from pytest_schemaguard.config import Settings
    from pytest_schemaguard.errors import ServerError
    from pytest_schemaguard.server import Database

    secret = "Pw" + secrets.token_hex(8)
    url = f"postgresql+psycopg://app:{secret}@db.internal:5432/schemaguard_x"
    server = PostgresServer(
        host="db.internal",
        port=5432,
        user="app",
        password=secret,
        maintenance_db="postgres",
        version=180000,
        version_text="18.0",
        binaries=None,
        source="dsn",
        run_as="external server",
    )
    database = Database("schemaguard_x", url, f"host=db.internal password={secret}")
    error = ServerError(f"cannot use {url} ({database.dsn})")
    shown = [
        repr(Settings(root=tmp_path, dsn=f"postgresql://app:{secret}@db.internal/postgres")),
        repr(server),
        server.describe(),
        repr(database),
        str(database),
        str(error),
        repr(error),
    ]
    for text in shown:
        assert secret not in text
        assert "***" in text or text == repr(server)


def test_a_planted_password_appears_in_no_output(
    pytester: pytest.Pytester, schemaguard_postgres: PostgresServer
) -> None:
    secret = "Pw" + secrets.token_hex(12)
    role = f"schemaguard_secret_{os.getpid()}"
    with schemaguard_postgres.admin() as conn:
        conn.execute(f"create role {role} login createdb password '{secret}'")
    try:
        write_project(pytester.path, [*CLEAN[:2], FAILING])
        (pytester.path / "test_app.py").write_text(APP_TEST)
        dsn = (
            f"postgresql://{role}:{secret}@{schemaguard_postgres.host}:"
            f"{schemaguard_postgres.port}/{schemaguard_postgres.maintenance_db}"
        )
        junit = pytester.path / "junit.xml"
        result = pytester.runpytest_subprocess(
            "--schemaguard",
            f"--schemaguard-dsn={dsn}",
            "-p",
            "no:cacheprovider",
            "-l",
            "-vv",
            "--tb=long",
            "-rA",
            f"--junitxml={junit}",
        )
        outcomes = result.parseoutcomes()
        # warnings: the test's UserWarning, and safety[8c1e5a...]'s no-lock-timeout
        assert (outcomes["failed"], outcomes["warnings"]) == (2, 2), outcomes
        result.stdout.fnmatch_lines(
            [
                esc("*::upgrade[d07b4e6c2a15-index_status] * FAILED*"),
                "test_app.py::test_shows_everything FAILED*",
            ]
        )
        # what the run shows: the header, the fixtures' reprs, the failing migration, the
        # warning, the locals (-l) -- each with the password masked
        result.stdout.fnmatch_lines(
            [f"schemaguard: PostgreSQL *, external server postgresql://{role}:***@*"]
        )
        result.stdout.fnmatch_lines(["*schemaguard_settings = Settings(*dsn='postgresql://*:***@*"])
        result.stdout.fnmatch_lines(
            ["*schemaguard_database = Database(name='schemaguard_*', url='postgresql*:***@*"]
        )
        result.stdout.fnmatch_lines(["*AssertionError: assert (Settings(*PostgresServer(*"])
        result.stdout.fnmatch_lines(["*UserWarning: settings are Settings(*:***@*"])
        result.stdout.fnmatch_lines(['    UndefinedObject: type "order_status_typo"*'])
        outputs = {
            "stdout": result.stdout.str(),
            "stderr": result.stderr.str(),
            "junit": junit.read_text(),
        }
        assert "Settings(" in outputs["junit"]
        for name, text in outputs.items():
            assert secret not in text, f"the password is in the {name}"
    finally:
        with schemaguard_postgres.admin() as conn:
            conn.execute(f"drop role {role}")


# --------------------------------------------------------------------------- leftovers


def test_a_killed_dsn_run_leaves_databases_that_the_next_run_drops(
    pytester: pytest.Pytester, tmp_path: Path, schemaguard_postgres: PostgresServer, inner_dsn: str
) -> None:
    marker = tmp_path / "started"
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_hang=f"""
        import time
        from pathlib import Path

        def test_hang(schemaguard_database):
            Path({str(marker)!r}).write_text(schemaguard_database.name)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--schemaguard-dsn={inner_dsn}",
            "test_hang.py",
        ],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()):  # written, not just created
            assert proc.poll() is None, "the inner run ended early"
            assert time.monotonic() < deadline, "the inner run never created its database"
            time.sleep(0.1)
    finally:
        proc.kill()  # SIGKILL: no cleanup runs in that process
        proc.wait()
    owned = {
        name: comment
        for name, comment in _databases(schemaguard_postgres).items()
        if comment and f":{proc.pid}:" in comment
    }
    assert marker.read_text() in owned
    assert len(owned) == 1  # the test's database (cloned from template0)
    for comment in owned.values():
        assert comment.startswith(f"pytest-schemaguard owner={socket.gethostname()}:{proc.pid}:")

    # the next run on that server (with --schemaguard, so that it connects at start-up and
    # its report header can say what it dropped)
    write_project(pytester.path, CLEAN)
    pytester.makepyfile(test_next="def test_next(schemaguard_database): pass")
    result = run_checks(pytester, inner_dsn, "-k", "history or test_next")
    result.assert_outcomes(passed=2)
    dropped = ", ".join(sorted(owned))
    result.stdout.fnmatch_lines(
        [
            f"schemaguard: PostgreSQL *(scratch databases schemaguard_*; dropped 1 left by killed "
            f"runs of this host: {dropped})"
        ]
    )
    assert not set(owned) & set(_databases(schemaguard_postgres))


def test_reaping_drops_only_our_databases_of_dead_processes_of_this_host(
    schemaguard_postgres: PostgresServer,
) -> None:
    dead = _dead_pid()
    live = os.getppid()
    token = secrets.token_hex(3)
    ours = owner_comment(dead)
    comments = {
        f"schemaguard_reap_{token}_dead": ours,
        f"schemaguard_reap_{token}_reused": owner_comment(live).replace(
            f":{live}:{process_start(live)} ", f":{live}:1 "
        ),
        f"schemaguard_reap_{token}_alive": owner_comment(live),
        f"schemaguard_reap_{token}_otherhost": ours.replace("owner=", "owner=elsewhere-", 1),
        f"schemaguard_reap_{token}_othercontainer": ours.rsplit("pidns=", 1)[0] + "pidns=1",
        f"schemaguard_reap_{token}_nocomment": None,
        f"schemaguard_reap_{token}_usercomment": "keep me",
        f"appdata_reap_{token}": ours,  # not a schemaguard_* name: never touched
    }
    with schemaguard_postgres.admin() as conn:
        for name, comment in comments.items():
            conn.execute(f'create database "{name}"')
            if comment is not None:
                conn.execute(f"comment on database \"{name}\" is '{comment}'")
        try:
            reaped = reap_databases(conn)
            left = set(_databases(schemaguard_postgres))
        finally:
            for name in comments:
                conn.execute(f'drop database if exists "{name}"')
    expected = {f"schemaguard_reap_{token}_dead", f"schemaguard_reap_{token}_reused"}
    assert expected <= set(reaped)
    assert not expected & left
    assert set(comments) - expected <= left


def test_an_interrupted_initdb_is_removed_by_the_next_start(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("SCHEMAGUARD_TMPDIR", str(runtime))
    clusters = runtime / f"pytest-schemaguard-{os.getuid()}" / "clusters"
    dead = _dead_pid()
    stale = clusters / f"initdb-{dead}-12345-k3j4h5g6"
    (stale / "data" / "base").mkdir(parents=True)
    (stale / "data" / "PG_VERSION").write_text("18\n")
    running = clusters / f"initdb-{os.getpid()}-{process_start(os.getpid())}-a1b2c3d4"
    (running / "data").mkdir(parents=True)
    unnamed_old = clusters / "initdb-x9y8z7w6"  # made before the directories named a process
    unnamed_old.mkdir()
    os.utime(unnamed_old, (time.time() - 7200, time.time() - 7200))
    unnamed_new = clusters / "initdb-q1w2e3r4"
    unnamed_new.mkdir()

    pytester.makepyfile(test_db="def test_db(schemaguard_database): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_db.py")
    result.assert_outcomes(passed=1)
    assert not stale.exists()
    assert not unnamed_old.exists()
    assert running.is_dir()  # this process is alive: its initdb is left alone
    assert unnamed_new.is_dir()  # too young to tell
    # the cluster the run made is cached, and no initdb directory of its own is left
    assert sorted(p.name for p in clusters.glob("initdb-*")) == sorted(
        [running.name, unnamed_new.name]
    )


def test_an_initdb_directory_of_a_reused_pid_is_removed(tmp_path: Path) -> None:
    clusters = tmp_path / f"pytest-schemaguard-{os.getuid()}" / "clusters"
    live = os.getpid()
    reused = clusters / f"initdb-{live}-1-abcdefgh"  # this pid, another start time
    reused.mkdir(parents=True)
    assert reap_orphans(tmp_path) == [reused]
    assert not reused.exists()


def test_initdb_killed_mid_run_is_removed_by_the_next_start(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("SCHEMAGUARD_TMPDIR", str(runtime))
    clusters = runtime / f"pytest-schemaguard-{os.getuid()}" / "clusters"
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_db="def test_db(schemaguard_database): pass")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_db.py"],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(clusters.glob("initdb-*")):
            assert proc.poll() is None, "the run ended before initdb started"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (left,) = clusters.glob("initdb-*")
    assert left.name.startswith(f"initdb-{proc.pid}-")
    time.sleep(1)  # initdb itself may still be writing there

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_db.py")
    result.assert_outcomes(passed=1)
    assert not left.exists()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_initdb_interrupted_leaves_no_directory(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: int
) -> None:
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("SCHEMAGUARD_TMPDIR", str(runtime))
    clusters = runtime / f"pytest-schemaguard-{os.getuid()}" / "clusters"
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_db="def test_db(schemaguard_database): pass")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_db.py"],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_default_sigint,  # Ctrl-C as a terminal gives it
    )
    try:
        deadline = time.monotonic() + 60
        while not list(clusters.glob("initdb-*")):
            assert proc.poll() is None, "the run ended before initdb started"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(clusters.glob("initdb-*")) == []
    assert not list(clusters.glob("*/PG_VERSION")), "an interrupted initdb was cached"


# --------------------------------------------------------------------------- start-up


def test_a_server_that_cannot_start_is_one_error_line(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    pytester.makepyfile("def test_db(schemaguard_database): pass")
    result = pytester.runpytest_subprocess(f"--schemaguard-postgres={empty}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines == [
        f"ERROR: schemaguard: the bin directory {empty} cannot run a server: no pg_ctl, "
        "postgres, initdb there. Point postgres at the directory that holds pg_ctl, postgres "
        "and initdb (e.g. the output of `pg_config --bindir`), or use postgres = auto",
        "",
    ]
    out = result.stdout.str()
    assert "Exit" not in out and "!!!" not in out and "Traceback" not in out
    result.stdout.fnmatch_lines(["*= no tests ran in *"])
