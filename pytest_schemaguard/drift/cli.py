"""``schemaguard-drift``: the ``live_drift`` check without pytest, for cron jobs and ops.

    schemaguard-drift --live-dsn postgresql://reader:***@db/app [--project DIR] [--dsn URL]

Reads the project's ``[tool.schemaguard]`` table (``pyproject.toml`` in ``--project``, default
the current directory), migrates a scratch database on the plugin's own throwaway server (or
on the server of ``--dsn``/the ``dsn`` setting) to the revision the live database is stamped
with, and prints what ``live_drift`` prints.  Exit status: 0 when the live database matches,
1 when it differs, 2 when it could not be compared (a usage or configuration error, a live
database that cannot be read).

This module does not import pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_schemaguard.errors import SchemaguardError

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from pytest_schemaguard.config import Settings
    from pytest_schemaguard.migrations.runner import CheckResult

__all__ = ["main"]

PROG = "schemaguard-drift"
LIVE_DSN_ENV = "SCHEMAGUARD_LIVE_DSN"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compare a live PostgreSQL database (read-only) with the schema the "
        "project's Alembic migrations build at the revision it is stamped with, and with the "
        "models and the baseline when [tool.schemaguard] configures them.",
        epilog="Exit status: 0 no drift, 1 drift, 2 not compared (usage, configuration, "
        "connection).",
    )
    parser.add_argument(
        "--live-dsn",
        default=os.environ.get(LIVE_DSN_ENV),
        help="the live database, postgresql://user:password@host:port/db "
        f"(default: ${LIVE_DSN_ENV})",
    )
    parser.add_argument(
        "--project",
        default=".",
        help="the directory holding pyproject.toml with [tool.schemaguard] (default: .)",
    )
    parser.add_argument(
        "--dsn",
        default=None,
        help="a scratch server to migrate on instead of starting a throwaway one (as "
        "--schemaguard-dsn)",
    )
    parser.add_argument(
        "--postgres",
        default=None,
        help="PostgreSQL binaries for the throwaway server: auto, system, embedded or a bin "
        "directory (as --schemaguard-postgres)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.live_dsn:
        parser.error(f"--live-dsn is required (or set ${LIVE_DSN_ENV})")
    root = Path(args.project).resolve()
    if not root.is_dir():
        parser.error(f"--project {args.project}: no such directory")
    try:
        result = _run(root, args)
    except SchemaguardError as exc:
        from pytest_schemaguard.urls import mask_url

        print(f"{PROG}: error: {mask_url(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM while the server runs: cleaned up by now
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    print(result.title)
    for line in result.lines:
        print(line)
    if result.outcome == "passed":
        for line in result.notes:
            print(line)
        print("no drift")
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0 if result.outcome == "passed" else 1


def _settings(root: Path, args: argparse.Namespace) -> Settings:
    from pytest_schemaguard.config import read_pyproject_table, resolve

    cli = {"enabled": True, "live_dsn": args.live_dsn}
    if args.dsn:
        cli["dsn"] = args.dsn
    if args.postgres:
        cli["postgres"] = args.postgres
    pyproject = root / "pyproject.toml"
    return resolve(
        root=root,
        pyproject=read_pyproject_table(pyproject),
        pyproject_name=os.path.relpath(pyproject),
        ini={},
        ini_name="pyproject.toml",
        cli=cli,
    )


@contextlib.contextmanager
def _in_project(root: Path) -> Iterator[None]:
    """Run as ``pytest`` would in the project: from its directory, with its
    ``[tool.pytest.ini_options] pythonpath`` on ``sys.path``."""
    from pytest_schemaguard.config import read_toml

    options = read_toml(root / "pyproject.toml").get("tool", {}).get("pytest", {})
    paths = (
        options.get("ini_options", {}).get("pythonpath", []) if isinstance(options, dict) else []
    )
    if isinstance(paths, str):
        paths = paths.split()
    added = [str(root / p) for p in paths if isinstance(p, str)]
    old_cwd = Path.cwd()
    sys.path[:0] = added
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        for p in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(p)


def _run(root: Path, args: argparse.Namespace) -> CheckResult:
    from pytest_schemaguard.drift.check import check_drift, drift_target, read_project_live
    from pytest_schemaguard.drift.live import connect_live
    from pytest_schemaguard.migrations.alembic_driver import AlembicProject, find_alembic_config
    from pytest_schemaguard.migrations.history import History
    from pytest_schemaguard.migrations.runner import MigrationRunner
    from pytest_schemaguard.parity.checks import ParityChecks
    from pytest_schemaguard.parity.migrated import MigrationFailed
    from pytest_schemaguard.parity.orm import capture_metadata
    from pytest_schemaguard.session import ServerManager

    settings = _settings(root, args)
    assert settings.live_dsn is not None
    with _in_project(root):
        config_path = find_alembic_config(settings.root, settings.alembic_config)
        project = AlembicProject(config_path, rootdir=root, step_timeout=settings.step_timeout)
        project.prepare(settings)
        metadata: MetaData | None = None
        models_error: str | None = None
        if settings.metadata:
            # before the revision modules are imported (they may change the models)
            try:
                metadata = capture_metadata(
                    settings.metadata, settings.root, where=settings.describe("metadata")
                )
            except SchemaguardError as exc:
                models_error = str(exc).splitlines()[0]
        history = History.build(project.read_revisions())
        # connected first: a live database that cannot be reached is reported before the
        # scratch server starts; read once env.py has said which version table is the project's
        conn = connect_live(settings.live_dsn)
        try:
            manager = ServerManager(settings)
            try:
                server = manager.get()
                runner = MigrationRunner(project, history, settings, server, project.make_config)
                parity = ParityChecks(
                    project,
                    history,
                    settings,
                    server,
                    project.make_config,
                    template=lambda: runner.template_name() if settings.start else None,
                    skip=frozenset(runner.pre_start),
                )
                try:
                    try:
                        live = read_project_live(parity, settings.live_dsn, conn=conn)
                    except MigrationFailed as exc:
                        raise SchemaguardError("\n".join(exc.lines())) from None
                    result = check_drift(parity, live=live, metadata=metadata)
                finally:
                    parity.close()
                    runner.close()
            finally:
                manager.close()
        finally:
            conn.close()
    target = drift_target(live, history)
    if result.outcome == "passed" and target.revision is not None:
        # say where the live database was found, as a failure does
        result.notes[:0] = target.lines
    if models_error is not None:
        result.outcome = "failed"
        result.lines.append(f"not compared with the schema the models build: {models_error}")
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
