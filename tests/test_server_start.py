"""How the local server starts fast (a spare copy of its cluster, a trimmed WAL) and what a
DSN connection leaves for later (the local binaries, the clone strategy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from migration_projects import CUSTOMERS_AND_ORDERS, run_checks, write_project

from pytest_schemaguard import binaries
from pytest_schemaguard.databases.templates import faster_strategy
from pytest_schemaguard.server import (
    LocalServer,
    PostgresServer,
    _reap_spares,
    _take_spare,
    cached_cluster,
    choose_run_as,
    connect_dsn,
    process_start,
    trim_wal,
)
from pytest_schemaguard.snapshot.introspect import read_schema, take_snapshot


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One runtime directory (and so one initdb) for the tests that start servers."""
    path = tmp_path_factory.mktemp("runtime")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCHEMAGUARD_TMPDIR", str(path))
        yield path


def _spares(runtime: Path) -> list[str]:
    return sorted(p.name for p in (runtime / f"pytest-schemaguard-{os.getuid()}/spares").glob("*"))


def _select_one(server: PostgresServer) -> object:
    with server.admin() as conn:
        row = conn.execute("select 1").fetchone()
    return row[0] if row else None


def test_a_start_takes_the_spare_copy_an_earlier_start_left(runtime: Path) -> None:
    found = binaries.find_binaries("auto", root=runtime)
    first = LocalServer(found)
    assert _select_one(first.start()) == 1
    first.stop()
    (spare,) = _spares(runtime)
    cluster = cached_cluster(found, choose_run_as(), runtime)
    assert spare.startswith(f"{cluster.name}-s")

    second = LocalServer(found)
    server = second.start()
    try:
        assert spare not in _spares(runtime)  # taken: renamed to the data directory
        assert _select_one(server) == 1
    finally:
        second.stop()
    (replacement,) = _spares(runtime)  # the one it took, made again for the next start
    assert replacement != spare
    # nothing else left: no working directory, no half-made copy
    assert [p.name for p in runtime.iterdir()] == [f"pytest-schemaguard-{os.getuid()}"]
    assert not list(runtime.glob("*/spares/copying-*"))


def test_trim_wal_keeps_the_checkpoint_segment_and_the_cluster_starts(runtime: Path) -> None:
    found = binaries.find_binaries("auto", root=runtime)
    cluster = cached_cluster(found, choose_run_as(), runtime)
    copy = runtime / "trimmed"
    subprocess.run(["cp", "-a", str(cluster), str(copy)], check=True)
    try:
        wal = copy / "pg_wal"
        (before,) = [p.name for p in wal.iterdir() if len(p.name) == 24]
        ahead = f"{before[:16]}{int(before[16:], 16) + 7:08X}"  # a recycled future segment
        (wal / ahead).write_bytes(b"\0" * 8192)
        trim_wal(found, copy)
        assert sorted(p.name for p in wal.iterdir() if len(p.name) == 24) == [before]
        local = LocalServer(found, cluster=copy)
        try:
            assert _select_one(local.start()) == 1
        finally:
            local.stop()
        assert not (runtime.parent / "spares").exists()  # a cluster outside the cache: none
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _fake_cluster(path: Path, control: bytes) -> Path:
    (path / "global").mkdir(parents=True)
    (path / "global" / "pg_control").write_bytes(control)
    (path / "PG_VERSION").write_text("15\n")
    return path


def test_a_spare_of_a_cluster_made_again_is_removed_never_used(tmp_path: Path) -> None:
    cache = tmp_path / f"pytest-schemaguard-{os.getuid()}"
    cluster = _fake_cluster(cache / "clusters" / "0123456789abcdef", b"system 2")
    stale = _fake_cluster(cache / "spares" / f"{cluster.name}-s111111", b"system 1")
    target = tmp_path / "work" / "data"
    target.parent.mkdir()
    assert _take_spare(cluster, target) is False
    assert not stale.exists() and not target.exists()

    good = _fake_cluster(cache / "spares" / f"{cluster.name}-s222222", b"system 2")
    assert _take_spare(cluster, target) is True
    assert not good.exists()
    assert (target / "global" / "pg_control").read_bytes() == b"system 2"


def test_spares_of_gone_clusters_and_copies_of_dead_runs_are_reaped(tmp_path: Path) -> None:
    kept_cluster = _fake_cluster(tmp_path / "clusters" / "aaaaaaaaaaaaaaaa", b"a")
    kept = _fake_cluster(tmp_path / "spares" / f"{kept_cluster.name}-s1", b"a")
    orphan = _fake_cluster(tmp_path / "spares" / "bbbbbbbbbbbbbbbb-s2", b"b")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead_copy = tmp_path / "spares" / f"copying-{gone.pid}-12345-abcdef"
    dead_copy.mkdir()
    live_copy = tmp_path / "spares" / f"copying-{os.getpid()}-{process_start(os.getpid())}-a1"
    live_copy.mkdir()
    _reap_spares(tmp_path)
    assert kept.exists() and live_copy.exists()
    assert not orphan.exists() and not dead_copy.exists()


def test_dsn_mode_finds_the_local_binaries_when_first_needed(
    schemaguard_postgres: PostgresServer, tmp_path: Path
) -> None:
    server = connect_dsn(schemaguard_postgres.url, postgres="auto", root=tmp_path)
    assert server.binaries is None and server.probe is not None  # nothing probed yet
    # auto: the binaries auto finds, unless they are older than the server (pg_dump refuses a
    # newer server): then the embedded ones
    expected = binaries.find_binaries("auto", root=tmp_path)
    if expected.major < schemaguard_postgres.version // 10000:
        expected = binaries.find_binaries("embedded", root=tmp_path)
    assert server.bindir == expected.bindir
    assert server.probe is None
    # the suite's server runs with fsync off: FILE_COPY may be tried there
    assert server.file_copy is (server.version >= 150000)


def test_the_clone_pool_tries_both_strategies_then_keeps_the_faster() -> None:
    timings: dict[str, list[float]] = {"FILE_COPY": [], "WAL_LOG": []}
    tried = []
    for _ in range(6):
        strategy = faster_strategy(timings, 3)
        tried.append(strategy)
        timings[strategy].append(0.05 if strategy == "FILE_COPY" else 0.02)
    assert tried == ["FILE_COPY", "WAL_LOG"] * 3
    assert faster_strategy(timings, 3) == "WAL_LOG"
    timings["FILE_COPY"] = [0.01, 0.01, 0.30]  # the median, not one slow clone, decides
    assert faster_strategy(timings, 3) == "FILE_COPY"


@pytest.mark.parametrize(
    ("version", "fsync", "file_copy"),
    [(150018, False, True), (150018, True, False), (140011, False, False)],
)
def test_clone_strategy(version: int, fsync: bool, file_copy: bool) -> None:
    server = PostgresServer(
        host="h",
        port=5432,
        user="u",
        password=None,
        maintenance_db="postgres",
        version=version,
        version_text="",
        binaries=None,
        source="dsn",
        run_as="external server",
        fsync=fsync,
    )
    assert server.file_copy is file_copy


def test_scratch_databases_on_a_server_in_sql_ascii_are_utf8(
    runtime: Path, pytester: pytest.Pytester
) -> None:
    """A cluster made by initdb in the C locale without -E holds its databases in SQL_ASCII,
    where psycopg returns text as bytes; the plugin's scratch databases there are UTF8, so
    that every catalog read works (it failed with a TypeError at the first read)."""
    found = binaries.find_binaries("auto", root=runtime)
    run_as = choose_run_as()
    work = runtime / "ascii"
    work.mkdir(mode=0o777)
    os.chmod(work, 0o777)
    data = work / "data"
    if run_as.kind == "runuser" and run_as.user:
        shutil.chown(work, user=run_as.user)
    subprocess.run(
        [
            *run_as.prefix,
            str(found.program("initdb")),
            *("-D", str(data), "-U", "postgres", "-A", "trust", "--locale=C", "--no-sync"),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    local = LocalServer(found, cluster=data)
    try:
        server = local.start()
        with server.admin() as conn:
            (template0,) = conn.execute(
                "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'template0'"
            ).fetchone()
        assert template0 == "SQL_ASCII"
        db = server.create_database()
        with psycopg.connect(db.dsn) as conn:
            assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
            conn.execute('CREATE TABLE "café" (id integer PRIMARY KEY, "crème" text)')
            before = read_schema(conn)
            conn.execute('ALTER TABLE "café" ADD COLUMN "brûlée" integer')
            after = read_schema(conn, since=before)
            assert [c.name for c in after.snapshot.get_table("public.café").columns] == [
                "id",
                "crème",
                "brûlée",
            ]
            assert after.snapshot == take_snapshot(conn)
            conn.rollback()
        server.drop_database(db)
        # and as a user meets it: the checks on a project, given the server as a DSN
        write_project(pytester.path, CUSTOMERS_AND_ORDERS)
        result = run_checks(pytester, server.url)
        result.assert_outcomes(passed=6)
        assert result.ret == pytest.ExitCode.OK
    finally:
        local.stop()
