"""Every fixture project migrates cleanly: upgrade head, downgrade base, upgrade head.

Alembic runs in a subprocess whose working directory is a copy of the project, so the
project's modules, SQLAlchemy registries and logging configuration never leak into this
process. The database URL reaches the project's ``env.py`` the way each project expects it:
the ``sqlalchemy.url`` option and the environment variable named by ``database_url_env``; a
second test hands ``env.py`` an open connection in ``config.attributes["connection"]`` (the
Alembic cookbook pattern every fixture project honours).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from defects import FIXTURES_DIR, copy_project

from pytest_schemaguard.server import Database, PostgresServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PROJECTS = sorted(
    path.name for path in FIXTURES_DIR.iterdir() if (path / "pyproject.toml").is_file()
)

# Runs inside the project copy: drives Alembic through its command API and reports, after each
# step, the version table and how many tables exist outside the system schemas.
DRIVER = r"""
import json, sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

mode, url = sys.argv[1], sys.argv[2]
steps = [step.split(":", 1) for step in sys.argv[3:]]
pyproject = tomllib.loads(Path("pyproject.toml").read_text())
settings = pyproject.get("tool", {}).get("schemaguard", {})
ini_options = pyproject.get("tool", {}).get("pytest", {}).get("ini_options", {})
pythonpath = ini_options.get("pythonpath", [])
sys.path[:0] = [str(Path(entry).resolve()) for entry in pythonpath]

alembic_config = settings.get("alembic_config", "alembic.ini")
if Path(alembic_config).name == "pyproject.toml":
    config = Config(toml_file=alembic_config)
else:
    config = Config(alembic_config, toml_file="pyproject.toml")
if mode == "url":
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
heads = sorted(ScriptDirectory.from_config(config).get_heads())

engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
TABLES = sa.text(
    "SELECT n.nspname || '.' || c.relname FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
)

report = {"heads": heads, "steps": []}
for action, target in steps:
    run = command.upgrade if action == "upgrade" else command.downgrade
    if mode == "connection":
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            run(config, target)
    else:
        run(config, target)
    with engine.connect() as connection:
        tables = sorted(connection.execute(TABLES).scalars())
        versions = []
        if connection.execute(sa.text("SELECT to_regclass('alembic_version')")).scalar():
            query = sa.text("SELECT version_num FROM alembic_version")
            versions = sorted(connection.execute(query).scalars())
    report["steps"].append({"step": f"{action} {target}", "tables": tables, "versions": versions})
engine.dispose()
print("SCHEMAGUARD-REPORT " + json.dumps(report))
"""


def schemaguard_settings(project: str) -> dict[str, Any]:
    pyproject = tomllib.loads((FIXTURES_DIR / project / "pyproject.toml").read_text())
    settings: dict[str, Any] = pyproject.get("tool", {}).get("schemaguard", {})
    return settings


def skip_without_extensions(project: str, server: PostgresServer) -> None:
    for extension in schemaguard_settings(project).get("extensions", []):
        if not server.has_extension(extension):
            pytest.skip(
                f"{project} needs the PostgreSQL extension {extension!r}, which "
                f"PostgreSQL {server.version_text} ({server.source}) does not provide"
            )


def run_alembic(
    project_dir: Path, mode: str, database: Database, env_url: str, *steps: str
) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    variable = schemaguard_settings(project_dir.name).get("database_url_env")
    if variable:
        env[variable] = env_url
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, mode, database.url, *steps],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"alembic failed in {project_dir.name} ({mode} mode):\n{result.stderr[-6000:]}"
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("SCHEMAGUARD-REPORT ")]
    assert len(lines) == 1, result.stdout
    report: dict[str, Any] = json.loads(lines[0].split(" ", 1)[1])
    return report


@pytest.mark.parametrize("project", PROJECTS)
def test_upgrade_downgrade_upgrade(
    project: str,
    schemaguard_postgres: PostgresServer,
    schemaguard_database: Database,
    tmp_path: Path,
) -> None:
    skip_without_extensions(project, schemaguard_postgres)
    project_dir = copy_project(project, tmp_path)

    report = run_alembic(
        project_dir,
        "url",
        schemaguard_database,
        schemaguard_database.url,
        "upgrade:head",
        "downgrade:base",
        "upgrade:head",
    )

    heads = report["heads"]
    first_head, base, second_head = report["steps"]
    assert len(heads) == 1
    assert first_head["versions"] == heads
    assert first_head["tables"], "upgrade head created no table"
    assert base["versions"] == []
    assert base["tables"] == [], f"downgrade base left tables behind: {base['tables']}"
    assert second_head["versions"] == heads
    assert second_head["tables"] == first_head["tables"]


@pytest.mark.parametrize("project", PROJECTS)
def test_env_py_uses_a_connection_passed_in_attributes(
    project: str,
    schemaguard_postgres: PostgresServer,
    schemaguard_database: Database,
    tmp_path: Path,
) -> None:
    skip_without_extensions(project, schemaguard_postgres)
    project_dir = copy_project(project, tmp_path)
    # Any URL env.py could fall back on names a database that does not exist: only the
    # connection handed over in config.attributes can reach the test database.
    missing = schemaguard_database.url.rsplit("/", 1)[0] + "/schemaguard_no_such_database"

    report = run_alembic(
        project_dir, "connection", schemaguard_database, missing, "upgrade:head", "downgrade:base"
    )

    at_head, at_base = report["steps"]
    assert at_head["versions"] == report["heads"]
    assert at_head["tables"]
    assert at_base["tables"] == []
