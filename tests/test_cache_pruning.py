"""Pruning the cluster cache: clusters whose binaries are gone or changed, or of an older
format, are removed at start-up with their spares and application copies; everything else
(live clusters, another host's or a newer version's, directories that are not the plugin's)
is kept."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from pytest_schemaguard import binaries
from pytest_schemaguard.binaries import Binaries
from pytest_schemaguard.server import (
    CLUSTER_FORMAT,
    SPARE_UNUSED_DAYS,
    LocalServer,
    _stamp_cluster,
    cached_cluster,
    choose_run_as,
    prune_cache,
)

LIVE, STALE, OTHER_HOST, NEWER, LEGACY = (c * 16 for c in "abcde")


def _cluster(path: Path) -> Path:
    (path / "global").mkdir(parents=True)
    (path / "global" / "pg_control").write_bytes(b"control")
    (path / "PG_VERSION").write_text("15\n")
    return path


def _fake_bindir(path: Path, version: str) -> Binaries:
    """A bin dir whose ``postgres --version`` prints ``version``."""
    path.mkdir(parents=True, exist_ok=True)
    postgres = path / "postgres"
    postgres.write_text(f'#!/bin/sh\necho "postgres (PostgreSQL) {version}"\n')
    postgres.chmod(0o755)
    return Binaries(bindir=path, source="path", version=version, probe="test")


def _stamp(cluster: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(cluster.with_name(cluster.name + ".json").read_text())
    return data


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "base" / f"pytest-schemaguard-{os.getuid()}"
    (root / "clusters").mkdir(parents=True)
    (root / "spares").mkdir()
    return root


def test_clusters_of_gone_binaries_go_with_their_spares_and_app_copies(
    cache: Path, tmp_path: Path
) -> None:
    clusters, spares = cache / "clusters", cache / "spares"
    run_as = choose_run_as()
    live = _cluster(clusters / LIVE)
    _stamp_cluster(live, _fake_bindir(tmp_path / "bin-live", "15.4"), run_as)
    live_spare = _cluster(spares / f"{LIVE}-s1a2b")
    live_app = _cluster(clusters / f"app-{LIVE}-shop-0123")
    (clusters / f"app-{LIVE}-shop-lock").write_text("/project/pyproject.toml\n")

    stale = _cluster(clusters / STALE)
    _stamp_cluster(stale, _fake_bindir(tmp_path / "bin-gone", "14.9"), run_as)
    shutil.rmtree(tmp_path / "bin-gone")  # the binaries were removed (an upgrade)
    stale_spare = _cluster(spares / f"{STALE}-s3c4d")
    stale_app = _cluster(clusters / f"app-{STALE}-shop-4567")
    stale_app_spare = _cluster(spares / f"app-{STALE}-shop-4567-s5e6f")
    (clusters / f"app-{STALE}-shop-lock").write_text("/project/pyproject.toml\n")

    # another host's (a /dev/shm shared between containers): its binaries are not ours to see
    elsewhere = _cluster(clusters / OTHER_HOST)
    _stamp_cluster(elsewhere, _fake_bindir(tmp_path / "bin-there", "16.1"), run_as)
    data = _stamp(elsewhere) | {"host": "another-container"}
    elsewhere.with_name(elsewhere.name + ".json").write_text(json.dumps(data))
    shutil.rmtree(tmp_path / "bin-there")
    # a newer version's (another virtual environment of this machine)
    newer = _cluster(clusters / NEWER)
    newer.with_name(newer.name + ".json").write_text(json.dumps({"format": CLUSTER_FORMAT + 1}))

    unrelated = [
        _cluster(clusters / "my-own-cluster"),  # not named as the plugin names clusters
        clusters / ("f" * 16),  # named so, but no cluster in it
        _cluster(tmp_path / "base" / "pytest-of-someone"),
        _cluster(tmp_path / "base" / "pytest-schemaguard-other"),
    ]
    unrelated[1].mkdir()
    (unrelated[1] / "PG_VERSION").write_text("15\n")

    removed = prune_cache(tmp_path / "base")

    assert sorted(removed) == sorted([stale, stale_app, stale_spare, stale_app_spare])
    assert not any(p.exists() for p in removed)
    assert not (clusters / f"{STALE}.json").exists()
    assert not (clusters / f"app-{STALE}-shop-lock").exists()
    kept = [live, live_spare, live_app, elsewhere, newer, *unrelated]
    assert all(p.exists() for p in kept)
    assert (clusters / f"app-{LIVE}-shop-lock").exists()
    assert not [p for p in clusters.iterdir() if p.name.startswith(("removing-", "."))]
    assert prune_cache(tmp_path / "base") == []  # nothing more on the next start

    shutil.rmtree(live)  # removed by hand: its stamp goes too at the next start; its
    assert prune_cache(tmp_path / "base") == []  # application copy is still good
    assert not (clusters / f"{LIVE}.json").exists() and live_app.exists()


def test_binaries_replaced_in_place_prune_only_when_the_version_changed(
    cache: Path, tmp_path: Path
) -> None:
    clusters = cache / "clusters"
    same, other = _cluster(clusters / LIVE), _cluster(clusters / STALE)
    _stamp_cluster(same, _fake_bindir(tmp_path / "bin-same", "15.4"), choose_run_as())
    _stamp_cluster(other, _fake_bindir(tmp_path / "bin-other", "15.4"), choose_run_as())
    # a reinstall of the same version (another file), and a minor upgrade in place
    _fake_bindir(tmp_path / "bin-same", "15.4 ")
    _fake_bindir(tmp_path / "bin-other", "15.5")

    assert prune_cache(tmp_path / "base") == [other]
    assert same.exists()
    size = (tmp_path / "bin-same" / "postgres").stat().st_size
    assert _stamp(same)["postgres"][0] == size  # type: ignore[index] # no need to ask again


def test_clusters_of_an_earlier_version_go_only_while_no_other_run_is_at_work(
    cache: Path, tmp_path: Path
) -> None:
    clusters = cache / "clusters"
    legacy = _cluster(clusters / LEGACY)  # made before clusters were stamped
    legacy_app = _cluster(clusters / f"app-{LEGACY}-shop-89ab")
    lock = clusters / f"app-{LEGACY}-shop-lock"
    lock.write_text("/project/pyproject.toml\n")
    # a run of another process (the one that started these tests) has a server here
    other_run = tmp_path / "base" / f"pytest-schemaguard-main-{os.getppid()}-x1y2"
    other_run.mkdir()
    assert prune_cache(tmp_path / "base") == []
    assert legacy.exists() and legacy_app.exists()

    other_run.rmdir()
    with open(lock) as held:  # an application copy being built from it: its lock is held
        fcntl.flock(held, fcntl.LOCK_EX)
        assert prune_cache(tmp_path / "base") == []
    assert legacy.exists() and legacy_app.exists() and lock.exists()
    assert prune_cache(tmp_path / "base") == [legacy, legacy_app]  # its build is over
    assert not lock.exists()


def test_a_spare_not_taken_for_days_is_removed(cache: Path, tmp_path: Path) -> None:
    cluster = _cluster(cache / "clusters" / LIVE)
    _stamp_cluster(cluster, _fake_bindir(tmp_path / "bin", "15.4"), choose_run_as())
    spare = _cluster(cache / "spares" / f"{cluster.name}-s7788")
    assert prune_cache(cache.parent, now=time.time() + (SPARE_UNUSED_DAYS - 1) * 86400) == []
    assert prune_cache(cache.parent, now=time.time() + (SPARE_UNUSED_DAYS + 1) * 86400) == [spare]
    assert cluster.exists()


def test_a_start_stamps_its_cluster_and_prunes_one_of_gone_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "runtime"
    monkeypatch.setenv("SCHEMAGUARD_TMPDIR", str(base))
    clusters = base / f"pytest-schemaguard-{os.getuid()}" / "clusters"
    stale = _cluster(clusters / STALE)
    _stamp_cluster(stale, _fake_bindir(tmp_path / "bin-gone", "14.9"), choose_run_as())
    shutil.rmtree(tmp_path / "bin-gone")

    found = binaries.find_binaries("auto", root=tmp_path)
    local = LocalServer(found)
    try:
        with local.start().admin() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        local.stop()
    assert not stale.exists() and not (clusters / f"{STALE}.json").exists()
    live = cached_cluster(found, choose_run_as(), base)
    stamp = _stamp(live)
    assert (stamp["format"], stamp["bindir"]) == (CLUSTER_FORMAT, str(found.bindir))
    assert stamp["version"] == found.version
