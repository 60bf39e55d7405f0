"""The project's own driver and env.py, as they are: asyncpg, psycopg2, pytest-alembic's env.py.

Each project in ``tests/data/projects`` passes clean and catches a defect planted in a copy of
it (a downgrade that leaves an index behind), on the driver its own configuration names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from migration_projects import Rev, run_checks, write_project
from sqlalchemy.engine import make_url

from pytest_schemaguard.migrations.alembic_driver import resolve_driver

PROJECTS = Path(__file__).resolve().parent / "data" / "projects"
PYTHONPATH = os.environ.get("PYTHONPATH", "")

ACCOUNTS_IDS = [
    "alembic.ini::history PASSED*",
    "alembic.ini::upgrade[[]a1c0ffee0001-create_accounts[]] PASSED*",
    "alembic.ini::roundtrip[[]a1c0ffee0001-create_accounts[]] PASSED*",
    "alembic.ini::upgrade[[]a1c0ffee0002-account_status[]] PASSED*",
    "alembic.ini::roundtrip[[]a1c0ffee0002-account_status[]] PASSED*",
    "alembic.ini::cycle PASSED*",
]
ACCOUNTS_DEFECT = (
    "0002_account_status.py",
    '    op.drop_index("ix_accounts_created_at", table_name="accounts")\n',
)
ACCOUNTS_LEFT = [
    "*roundtrip of a1c0ffee0002 (account status) (migrations/versions/0002_account_status.py)",
    "downgrade of a1c0ffee0002 (account status) did not restore the schema before it:",
    "  downgrade of a1c0ffee0002 (account status) left index "
    "public.accounts.ix_accounts_created_at",
]


def copy(name: str, pytester: pytest.Pytester) -> Path:
    """The project ``name`` copied into the pytester directory (where the inner run starts)."""
    shutil.copytree(
        PROJECTS / name,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return pytester.path


def plant(project: Path, file: str, line: str) -> None:
    """Remove ``line`` from a revision file (a downgrade that forgets something)."""
    path = project / "migrations" / "versions" / file
    text = path.read_text()
    assert line in text
    path.write_text(text.replace(line, ""))


def run_in(pytester: pytest.Pytester, dsn: str, *args: str) -> pytest.RunResult:
    return run_checks(pytester, dsn, "-v", *args)


def assert_clean(result: pytest.RunResult, ids: list[str]) -> None:
    result.assert_outcomes(passed=len(ids))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(ids, consecutive=False)
    result.stdout.no_fnmatch_line("*Traceback*")


def assert_left_index(result: pytest.RunResult, lines: list[str]) -> None:
    # roundtrip fails (and upgrading again then fails on the index left behind); the cycle
    # runs in a fresh database and passes
    result.assert_outcomes(passed=5, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(lines)
    result.stdout.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------------------ asyncpg

# Alembic's `alembic init -t async` env.py: ignores config.attributes, runs asyncio.run() on an
# engine made from sqlalchemy.url.
ENV_ASYNC_TEMPLATE = """
import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import async_engine_from_config

config = context.config


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations():
    connectable = async_engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


asyncio.run(run_async_migrations())
"""

# The shared connection used as an async engine, whatever it is.
ENV_ASYNC_ENGINE = """
import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import async_engine_from_config

config = context.config


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


async def main():
    connectable = config.attributes.get("connection") or async_engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


asyncio.run(main())
"""


@pytest.mark.parametrize(
    "env", [None, ENV_ASYNC_TEMPLATE, ENV_ASYNC_ENGINE], ids=["cookbook", "template", "engine"]
)
def test_an_async_env_py_on_asyncpg_passes_clean(
    pytester: pytest.Pytester, inner_dsn: str, env: str | None
) -> None:
    project = copy("async_accounts", pytester)
    if env is not None:
        (project / "migrations" / "env.py").write_text(env.lstrip())
    result = run_in(pytester, inner_dsn)
    assert_clean(result, ACCOUNTS_IDS)


def test_an_async_env_py_on_asyncpg_catches_a_leftover_index(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    project = copy("async_accounts", pytester)
    plant(project, *ACCOUNTS_DEFECT)
    result = run_in(pytester, inner_dsn)
    assert_left_index(result, ACCOUNTS_LEFT)


def test_env_py_gets_urls_and_a_connection_in_the_projects_driver(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    project = copy("async_accounts", pytester)
    env = project / "migrations" / "env.py"
    env.write_text(
        textwrap.dedent(
            """
            import os

            from sqlalchemy.engine import make_url

            from alembic import context

            config = context.config
            connection = config.attributes["connection"]
            print(
                "DRIVERS",
                make_url(config.get_main_option("sqlalchemy.url")).drivername,
                make_url(os.environ["APP_DATABASE_URL"]).drivername,
                connection.dialect.driver,
                type(connection.connection.driver_connection).__module__.split(".")[0],
            )
            """
        )
        + env.read_text()
    )
    with (project / "pyproject.toml").open("a") as f:
        f.write('database_url_env = "APP_DATABASE_URL"\n')
    result = run_in(pytester, inner_dsn, "-s", "-k", "upgrade and a1c0ffee0001")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*DRIVERS postgresql+asyncpg postgresql+asyncpg asyncpg asyncpg*"])


# ------------------------------------------------------------------------ psycopg2

SETTINGS_IDS = [
    "alembic.ini::history PASSED*",
    "alembic.ini::upgrade[[]b2d0c0de0001-create_settings[]] PASSED*",
    "alembic.ini::roundtrip[[]b2d0c0de0001-create_settings[]] PASSED*",
    "alembic.ini::upgrade[[]b2d0c0de0002-settings_flag[]] PASSED*",
    "alembic.ini::roundtrip[[]b2d0c0de0002-settings_flag[]] PASSED*",
    "alembic.ini::cycle PASSED*",
]


def test_a_psycopg2_url_runs_revisions_written_for_psycopg2_on_psycopg2(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    copy("psycopg2_settings", pytester)
    result = run_in(pytester, inner_dsn)
    assert_clean(result, SETTINGS_IDS)


def test_the_psycopg2_project_catches_a_leftover_index(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    project = copy("psycopg2_settings", pytester)
    plant(
        project,
        "0002_settings_flag.py",
        '    op.drop_index("ix_settings_name", table_name="settings")\n',
    )
    result = run_in(pytester, inner_dsn)
    assert_left_index(
        result,
        [
            "*roundtrip of b2d0c0de0002 (settings flag) "
            "(migrations/versions/0002_settings_flag.py)",
            "downgrade of b2d0c0de0002 (settings flag) did not restore the schema before it:",
            "  downgrade of b2d0c0de0002 (settings flag) left index "
            "public.settings.ix_settings_name",
        ],
    )


def test_the_driver_setting_wins_over_the_url(pytester: pytest.Pytester, inner_dsn: str) -> None:
    # the same revisions on psycopg 3 fail: the reason the project's driver matters
    project = copy("psycopg2_settings", pytester)
    with (project / "pyproject.toml").open("a") as f:
        f.write('driver = "psycopg"\n')
    result = run_in(pytester, inner_dsn, "-k", "upgrade and b2d0c0de0002")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "upgrade of b2d0c0de0002 (settings flag) failed",
            "*",
            "*op.execute(settings.update().values(flag=sa.literal(*",
            "SQL:",
            "    UPDATE settings SET flag=%(flag)s::VARCHAR, enabled=%(enabled)s::VARCHAR",
            "error:",
            '    DatatypeMismatch: column "enabled" is of type boolean but expression is of type '
            "character varying",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------------------ pytest-alembic's env.py


@pytest.mark.parametrize("name", ["pytest_alembic_sync", "pytest_alembic_async"])
def test_pytest_alembics_env_py_passes_clean(
    pytester: pytest.Pytester, inner_dsn: str, name: str
) -> None:
    copy(name, pytester)
    result = run_in(pytester, inner_dsn)
    assert_clean(result, ACCOUNTS_IDS)


@pytest.mark.parametrize("name", ["pytest_alembic_sync", "pytest_alembic_async"])
def test_pytest_alembics_env_py_catches_a_leftover_index(
    pytester: pytest.Pytester, inner_dsn: str, name: str
) -> None:
    project = copy(name, pytester)
    plant(project, *ACCOUNTS_DEFECT)
    result = run_in(pytester, inner_dsn)
    assert_left_index(result, ACCOUNTS_LEFT)


def test_an_async_env_py_connecting_elsewhere_is_stopped_before_migrating(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    project = copy("async_accounts", pytester)
    (project / "migrations" / "env.py").write_text(
        ENV_ASYNC_TEMPLATE.replace(
            "    connectable = async_engine_from_config(\n"
            "        config.get_section(config.config_ini_section, {}),\n"
            '        prefix="sqlalchemy.",\n'
            "        poolclass=pool.NullPool,\n"
            "    )",
            "    from sqlalchemy.engine import make_url\n"
            "    from sqlalchemy.ext.asyncio import create_async_engine\n\n"
            '    url = make_url(config.get_main_option("sqlalchemy.url"))\n'
            '    url = url.set(database="postgres")\n'
            "    connectable = create_async_engine(url, poolclass=pool.NullPool)",
        ).lstrip()
    )
    result = run_in(pytester, inner_dsn, "-k", "upgrade and a1c0ffee0001")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "    env.py connected to database 'postgres', not to the scratch database it was "
            "given; nothing was migrated",
            "    it was given database 'schemaguard_*' (postgresql+asyncpg://*): make env.py use*",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------------------ start-up errors

BLOCK_ASYNCPG = """
import sys


class _Absent:
    # asyncpg cannot be imported in this interpreter, as if it were not installed
    def find_spec(self, name, path=None, target=None):
        if name == "asyncpg" or name.startswith("asyncpg."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Absent())
"""


def test_a_missing_driver_package_is_one_usage_error(
    pytester: pytest.Pytester, inner_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg is installed here: a sitecustomize in the inner interpreter makes it unimportable
    copy("async_accounts", pytester)
    site = pytester.mkdir("site")
    (site / "sitecustomize.py").write_text(BLOCK_ASYNCPG)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), PYTHONPATH])))
    result = run_in(pytester, inner_dsn)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: schemaguard: the project's driver is asyncpg (sqlalchemy.url in alembic.ini), "
            "but asyncpg cannot be imported (No module named 'asyncpg'): pip install asyncpg"
        ]
    )
    assert len([line for line in result.stderr.lines if line.strip()]) == 1
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stderr.no_fnmatch_line("*Traceback*")


def test_a_missing_driver_named_by_the_setting_is_one_usage_error(
    pytester: pytest.Pytester, inner_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy("pytest_alembic_sync", pytester)
    with (pytester.path / "pyproject.toml").open("a") as f:
        f.write('driver = "asyncpg"\n')
    site = pytester.mkdir("site")
    (site / "sitecustomize.py").write_text(BLOCK_ASYNCPG)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), PYTHONPATH])))
    result = run_in(pytester, inner_dsn)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: schemaguard: the project's driver is asyncpg ([[]tool.schemaguard[]] driver in "
            "pyproject.toml), but asyncpg cannot be imported (*): pip install asyncpg"
        ]
    )


# ------------------------------------------------------------------------ env_context

# The recipes of docs/recipes/env_py.md, as a project would write them.
CONTEXT_HOOKS = '''
import contextlib
from concurrent.futures import ThreadPoolExecutor

from app import config


@contextlib.contextmanager
def in_worker_thread():
    """env.py runs in a thread of its own (the context yields the function that runs it)."""

    def run(fn):
        with ThreadPoolExecutor(1, thread_name_prefix="migrations") as pool:
            return pool.submit(fn).result()

    yield run


@contextlib.contextmanager
def scratch_settings(url):
    """The application's settings point at the scratch database while env.py runs."""
    saved = config.settings.database_url
    config.settings.database_url = url
    try:
        yield
    finally:
        config.settings.database_url = saved
'''

APP_CONFIG = """
class Settings:
    database_url = "postgresql+psycopg://app@db.internal:5432/production"


settings = Settings()
"""

# an env.py that only knows the application's settings, and says which thread it runs in
ENV_FROM_SETTINGS = """
import threading

from alembic import context
from sqlalchemy import create_engine, pool

from app.config import settings

print("ENV-THREAD", threading.current_thread().name)
engine = create_engine(settings.database_url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""


def _context_project(pytester: pytest.Pytester, *factories: str) -> None:
    copy("pytest_alembic_sync", pytester)
    (pytester.path / "migrations" / "env.py").write_text(ENV_FROM_SETTINGS.lstrip())
    (pytester.path / "app").mkdir()
    (pytester.path / "app" / "__init__.py").write_text("")
    (pytester.path / "app" / "config.py").write_text(APP_CONFIG.lstrip())
    (pytester.path / "schemaguard_hooks.py").write_text(CONTEXT_HOOKS.lstrip())
    for factory in factories:
        with (pytester.path / "pyproject.toml").open("a") as f:
            f.write(f'env_context = "{factory}"\n')


def test_env_context_overrides_the_settings_env_py_reads(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    _context_project(pytester, "schemaguard_hooks:scratch_settings")
    result = run_in(pytester, inner_dsn, "-s")
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.OK
    # serially, env.py runs in the plugin's migration thread (each item advances the pass)
    result.stdout.fnmatch_lines(["*ENV-THREAD schemaguard-migrations*"])


def test_env_context_can_run_env_py_in_a_worker_thread(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    _context_project(pytester)
    (pytester.path / "schemaguard_hooks.py").write_text(
        CONTEXT_HOOKS.lstrip()
        + textwrap.dedent(
            """

            @contextlib.contextmanager
            def both(url):
                with scratch_settings(url), in_worker_thread() as run:
                    yield run
            """
        )
    )
    with (pytester.path / "pyproject.toml").open("a") as f:
        f.write('env_context = "schemaguard_hooks:both"\n')
    result = run_in(pytester, inner_dsn, "-s")
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*ENV-THREAD migrations_0*"])
    result.stdout.no_fnmatch_line("*ENV-THREAD schemaguard-migrations*")


def test_without_env_context_the_settings_env_py_is_not_migrated(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    _context_project(pytester)
    result = run_in(pytester, inner_dsn, "-k", "upgrade and a1c0ffee0001")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        # psycopg 3.1 does not name the host it could not resolve
        ["env.py failed before the first migration step:", "*", "*", "error:", "*OperationalError*"]
    )


def test_an_env_context_that_cannot_be_imported_is_one_usage_error(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    _context_project(pytester, "schemaguard_hooks:no_such_context")
    result = run_in(pytester, inner_dsn)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: schemaguard: [[]tool.schemaguard[]] env_context in pyproject.toml = "
            "'schemaguard_hooks:no_such_context': schemaguard_hooks has no attribute "
            "'no_such_context'"
        ]
    )
    result.stderr.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------------------ choosing the driver


def test_the_report_header_names_the_driver_and_where_it_came_from(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    copy("async_accounts", pytester)
    result = run_in(pytester, inner_dsn, "-k", "history")
    result.stdout.fnmatch_lines(["schemaguard: driver asyncpg (sqlalchemy.url in alembic.ini)"])


@pytest.mark.parametrize(
    ("setting", "urls", "expected"),
    [
        pytest.param(
            "psycopg2",
            [("postgresql+asyncpg://a@h/d", "ini")],
            ("psycopg2", "postgresql+psycopg2", "setting"),
            id="the-setting-wins",
        ),
        pytest.param(
            None,
            [("postgresql+asyncpg://a@h/d", "$DATABASE_URL"), ("postgresql+pg8000://a@h/d", "ini")],
            ("asyncpg", "postgresql+asyncpg", "$DATABASE_URL"),
            id="the-first-url",
        ),
        pytest.param(
            None,
            [(None, "$DATABASE_URL"), ("postgresql+psycopg2://a@h/d", "ini")],
            ("psycopg2", "postgresql+psycopg2", "ini"),
            id="an-unset-variable-is-skipped",
        ),
        pytest.param(
            None,
            [("driver://user:pass@localhost/dbname", "ini")],
            ("psycopg", "postgresql+psycopg", "the default"),
            id="alembic-template-placeholder",
        ),
        pytest.param(
            None,
            [("sqlite:///app.db", "ini")],
            ("psycopg", "postgresql+psycopg", "the default"),
            id="another-database",
        ),
        pytest.param(
            None,
            [("postgresql+pygresql://a@h/d", "ini")],
            (
                "psycopg",
                "postgresql+psycopg",
                "the default: ini names pygresql, which the checks do not run on; set driver "
                "to one of psycopg, psycopg2, asyncpg, pg8000 in [tool.schemaguard] to choose",
            ),
            id="a-driver-the-checks-do-not-run-on",
        ),
        pytest.param(
            None,
            [
                ("postgresql+pygresql://a@h/d", "$DATABASE_URL"),
                ("postgresql+pg8000://a@h/d", "ini"),
            ],
            ("pg8000", "postgresql+pg8000", "ini"),
            id="a-later-url-with-a-known-driver",
        ),
    ],
)
def test_resolve_driver(
    setting: str | None, urls: list[tuple[str | None, str]], expected: tuple[str, str, str]
) -> None:
    driver = resolve_driver(setting, setting_source="setting", urls=urls)
    assert (driver.name, driver.scheme, driver.source) == expected


def test_a_plain_url_means_what_the_installed_sqlalchemy_makes_of_it() -> None:
    default = make_url("postgresql://a@h/d").get_dialect().driver  # psycopg2 in 2.0, psycopg in 2.1
    driver = resolve_driver(None, urls=[("postgresql://app:secret@db/app", "ini")])
    assert (driver.name, driver.scheme) == (default, "postgresql")
    assert driver.source == "ini (plain: SQLAlchemy's default)"
    # the project is handed plain URLs, as it writes them
    assert driver.url("postgresql+psycopg://u:p@127.0.0.1:5/scratch") == (
        "postgresql://u:p@127.0.0.1:5/scratch"
    )


def test_driver_urls_keep_everything_but_the_scheme() -> None:
    driver = resolve_driver("asyncpg")
    assert driver.url("postgresql+psycopg://u:p%40ss@127.0.0.1:5432/schemaguard_x") == (
        "postgresql+asyncpg://u:p%40ss@127.0.0.1:5432/schemaguard_x"
    )


ACCOUNT_MODELS = """
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column(
        "status",
        postgresql.ENUM("active", "closed", name="account_status"),
        nullable=False,
        server_default="active",
    ),
    sa.Index("ux_accounts_email", "email", unique=True),
    sa.Index("ix_accounts_created_at", "created_at"),
)
"""


@pytest.mark.parametrize("name", ["async_accounts", "pytest_alembic_async"])
def test_orm_parity_migrates_an_async_project_on_its_driver(
    pytester: pytest.Pytester, inner_dsn: str, name: str
) -> None:
    copy(name, pytester)
    (pytester.path / "account_models.py").write_text(ACCOUNT_MODELS.lstrip())
    with (pytester.path / "pyproject.toml").open("a") as f:
        f.write('metadata = "account_models:metadata"\n')
    result = run_in(pytester, inner_dsn, "-k", "orm_parity")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["alembic.ini::orm_parity PASSED*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_an_async_project_under_xdist_catches_the_leftover_index(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # each worker runs its revisions' upgrade and roundtrip in passes of its own
    project = copy("async_accounts", pytester)
    plant(project, *ACCOUNTS_DEFECT)
    result = run_in(pytester, inner_dsn, "-n", "2")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*downgrade of a1c0ffee0002 (account status) left index "
            "public.accounts.ix_accounts_created_at"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize("defect", [False, True], ids=["clean", "leftover-index"])
def test_pytest_alembics_env_py_on_pg8000(
    pytester: pytest.Pytester, inner_dsn: str, defect: bool
) -> None:
    project = copy("pytest_alembic_sync", pytester)
    with (project / "pyproject.toml").open("a") as f:
        f.write('driver = "pg8000"\n')
    if defect:
        plant(project, *ACCOUNTS_DEFECT)
    result = run_in(pytester, inner_dsn)
    result.stdout.fnmatch_lines(["schemaguard: driver pg8000 ([[]tool.schemaguard[]] driver*"])
    if defect:
        assert_left_index(result, ACCOUNTS_LEFT)
    else:
        assert_clean(result, ACCOUNTS_IDS)


def test_a_plain_url_whose_default_driver_is_missing_falls_back_to_psycopg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (SQLAlchemy 2.0 without psycopg2): the project cannot be connecting with that URL as it
    # is; psycopg, a dependency of the plugin, is always installed
    import importlib

    from pytest_schemaguard.migrations import alembic_driver

    default = make_url("postgresql://a@h/d").get_dialect().driver
    real = importlib.import_module

    def import_module(name: str, package: str | None = None) -> object:
        if name == default:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(alembic_driver.importlib, "import_module", import_module)
    driver = resolve_driver(None, urls=[("postgresql://app@db/app", "ini")])
    assert (driver.name, driver.scheme) == ("psycopg", "postgresql+psycopg")
    assert driver.source == (
        f"ini is plain, and {default}, which SQLAlchemy would use, is not installed"
    )


# ------------------------------------------------------------------------ a failed transaction

# A revision that swallows a failed statement: the next one fails only because the transaction
# had failed; the error that failed it is the one reported.
SWALLOWED = [
    Rev(
        "c0ffee000001",
        None,
        "create settings",
        """
        op.create_table("settings", sa.Column("key", sa.Text, primary_key=True))
        op.execute("INSERT INTO settings VALUES ('mode')")
        """,
        'op.drop_table("settings")',
    ),
    Rev(
        "c0ffee000002",
        "c0ffee000001",
        "default mode",
        """
        try:
            op.execute("INSERT INTO settings VALUES ('mode')")
        except Exception:
            op.execute("UPDATE settings SET key = 'mode'")
        """,
        "op.execute(\"DELETE FROM settings WHERE key = 'mode'\")",
    ),
]


@pytest.mark.parametrize(
    ("driver", "kind", "then"),
    [
        ("psycopg", "UniqueViolation", "InFailedSqlTransaction"),
        ("pg8000", "UniqueViolation", "InFailedSqlTransaction"),
    ],
)
def test_the_statement_that_failed_the_transaction_is_reported_not_the_next_one(
    pytester: pytest.Pytester, inner_dsn: str, driver: str, kind: str, then: str
) -> None:
    write_project(pytester.path, SWALLOWED)
    result = run_in(pytester, inner_dsn, "-o", f"schemaguard_driver={driver}", "-k", "upgrade")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "upgrade of c0ffee000002 (default mode) failed",
            "file: migrations/versions/0001_c0ffee000002.py",
            "at:   0001_c0ffee000002.py:15: op.execute(\"INSERT INTO settings VALUES ('mode')\")",
            "SQL:",
            "    INSERT INTO settings VALUES ('mode')",
            "error:",
            f'    {kind}: duplicate key value violates unique constraint "settings_pkey"',
            "    DETAIL:  Key (key)=(mode) already exists.",
            f"    (the transaction then stayed failed: {then}: current transaction is aborted, "
            "commands ignored until end of transaction block)",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------------------ Flask-Migrate

FLASK_APP = """
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


class Note(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)


def create_app(config=None):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///notes.db")
    app.config.update(config or {})
    db.init_app(app)
    migrate.init_app(app, db)
    return app
"""

FLASK_HOOKS = '''
import contextlib

from app import create_app


@contextlib.contextmanager
def flask_app(url):
    """env.py runs inside an application on the scratch database."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        yield
'''


def flask_migrate_project(pytester: pytest.Pytester) -> Path:
    """A Flask application whose migrations directory `flask db init` wrote (Flask-Migrate's
    template: `migrations/alembic.ini` names no script_location, env.py reads current_app), with
    one revision."""
    pytest.importorskip("flask_migrate")
    root = pytester.path
    (root / "app.py").write_text(FLASK_APP.lstrip())
    made = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "db", "init"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    note = Rev(
        "f1a5c0000001",
        None,
        "create notes",
        """
        op.create_table(
            "note",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("title", sa.String(200), nullable=False),
        )
        """,
        'op.drop_table("note")',
    )
    (root / "migrations" / "versions" / "f1a5c0000001_create_notes.py").write_text(note.source())
    return root


def test_flask_migrate_without_an_application_says_how_to_give_it_one(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    root = flask_migrate_project(pytester)
    assert not (root / "alembic.ini").exists() and not (root / "pyproject.toml").exists()
    result = run_checks(pytester, inner_dsn, "-k", "", "-rs")
    # migrations/alembic.ini is found and its directory is the script location
    result.stdout.fnmatch_lines(["*_ upgrade[[]f1a5c0000001-create_notes[]] _*"])
    outcomes = result.parseoutcomes()
    assert (outcomes.get("failed"), outcomes.get("passed")) == (1, 1), outcomes
    result.stdout.fnmatch_lines(
        [
            "    RuntimeError: Working outside of application context.",
            "*",
            "fix:  env.py reads the Flask application (current_app): give an env_context hook "
            "that creates the application on the scratch database's URL and pushes its context "
            "(see docs/recipes/env_py.md, Flask-Migrate)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["SKIPPED * migrations/alembic.ini:1: blocked: upgrade[[]f1a5c0000001-create_notes[]] *"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_flask_migrate_with_an_application_hook_passes(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    root = flask_migrate_project(pytester)
    (root / "schemaguard_hooks.py").write_text(FLASK_HOOKS.lstrip())
    (root / "pyproject.toml").write_text(
        '[tool.schemaguard]\nenv_context = "schemaguard_hooks:flask_app"\n'
    )
    result = run_checks(pytester, inner_dsn, "-v")
    assert_clean(
        result,
        [
            "migrations/alembic.ini::history PASSED*",
            "migrations/alembic.ini::upgrade[[]f1a5c0000001-create_notes[]] PASSED*",
            "migrations/alembic.ini::roundtrip[[]f1a5c0000001-create_notes[]] PASSED*",
            "migrations/alembic.ini::cycle PASSED*",
        ],
    )
