"""Databases for the application's own tests: schemaguard_migrated_database,
schemaguard_database_at and schemaguard_migrator, run in inner pytest projects."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import pytest
from migration_projects import CLEAN, ENV_CONNECTION, write_project
from psycopg import sql

from pytest_schemaguard.config import Settings
from pytest_schemaguard.databases.source import locate
from pytest_schemaguard.databases.templates import _exists
from pytest_schemaguard.server import PostgresServer, _runtime_base

DOCS = Path(__file__).resolve().parent.parent / "docs"
HEAD = "d07b4e6c2a15"

ISOLATION_TESTS = f"""
import pytest
from sqlalchemy import text


@pytest.mark.parametrize("n", range(50))
def test_each_sees_head_and_only_its_row(schemaguard_migrated_database, n):
    with schemaguard_migrated_database.engine.begin() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == {HEAD!r}
        conn.execute(text("insert into orders (total) values (:n)"), {{"n": n}})
        assert conn.execute(text("select count(*) from orders")).scalar() == 1
"""

TEMPLATE_LINE = (
    "schemaguard: application template schemaguard_tpl_*_* (the migrations at head, "
    "4 files hashed): {}"
)


def run(pytester: pytest.Pytester, dsn: str | None, *args: str) -> pytest.RunResult:
    server = (f"--schemaguard-dsn={dsn}",) if dsn else ()
    return pytester.runpytest_subprocess(*server, "-p", "no:cacheprovider", *args)


def template_name(result: pytest.RunResult) -> str:
    match = re.search(r"application template (schemaguard_tpl_\w+) ", result.stdout.str())
    assert match, result.stdout.str()
    return match[1]


def project_templates(server: PostgresServer, stem: str) -> list[str]:
    with server.admin() as conn:
        rows = conn.execute(
            "select datname from pg_database where starts_with(datname, %s) order by 1", (stem,)
        ).fetchall()
    return [str(r[0]) for r in rows]


def drop_templates(server: PostgresServer, names: list[str]) -> None:
    with server.admin() as conn:
        for name in names:
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(ident))
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_fifty_tests_each_get_a_fresh_database_at_head(
    pytester: pytest.Pytester, inner_dsn: str, schemaguard_postgres: PostgresServer, xdist: bool
) -> None:
    write_project(pytester.path, CLEAN)
    pytester.makepyfile(test_app=ISOLATION_TESTS)
    args = ("-p", "xdist", "-n", "2") if xdist else ()
    result = run(pytester, inner_dsn, *args)
    result.assert_outcomes(passed=50)
    assert result.ret == pytest.ExitCode.OK
    built = TEMPLATE_LINE.format("built in * s and kept in the DSN server")
    if xdist:  # one worker built it; the other, waiting on the lock, reused it
        result.stdout.fnmatch_lines_random(
            [built, TEMPLATE_LINE.format("reused from the DSN server")]
        )
    else:
        result.stdout.fnmatch_lines([built])
    result.stdout.no_fnmatch_line("*INFO*alembic*")
    source = locate(Settings(root=pytester.path, alembic_config="alembic.ini"))
    # one template for the project, whichever worker built it, and no clone left behind
    assert project_templates(schemaguard_postgres, source.stem) == [source.template_name]
    drop_templates(schemaguard_postgres, [source.template_name])


def test_template_is_reused_until_a_revision_file_changes(
    pytester: pytest.Pytester, inner_dsn: str, schemaguard_postgres: PostgresServer
) -> None:
    write_project(pytester.path, CLEAN)
    pytester.makepyfile(test_app="def test_head(schemaguard_migrated_database):\n    pass\n")
    first = run(pytester, inner_dsn)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines([TEMPLATE_LINE.format("built in * s and kept in the DSN server")])
    again = run(pytester, inner_dsn)
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines([TEMPLATE_LINE.format("reused from the DSN server")])
    assert template_name(again) == template_name(first)

    stem = template_name(first).rpartition("_")[0] + "_"
    # databases that are not this project's templates, with names a careless LIKE would take
    bystanders = [stem.replace("_", "-") + "keep", stem.rstrip("_") + "x_keep"]
    with schemaguard_postgres.admin() as conn:
        for name in bystanders:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    revision = next((pytester.path / "migrations" / "versions").glob("0002_*.py"))
    revision.write_text(revision.read_text() + "\n# a comment changes the hash\n")
    changed = run(pytester, inner_dsn)
    changed.assert_outcomes(passed=1)
    changed.stdout.fnmatch_lines([TEMPLATE_LINE.format("built in * s and kept in the DSN server")])
    assert template_name(changed) != template_name(first)
    # the project's older template is dropped; the new one is the only one; nothing else goes
    assert project_templates(schemaguard_postgres, stem) == [template_name(changed)]
    with schemaguard_postgres.admin() as conn:
        for name in bystanders:
            assert _exists(conn, name), name
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
    drop_templates(schemaguard_postgres, [template_name(changed)])


def test_own_server_keeps_the_template_in_the_cached_cluster(pytester: pytest.Pytester) -> None:
    """Two workers on a cold cache: one builds the cluster copy while the other waits for it
    (a file lock), and both start their servers from it; the next run reuses it."""
    write_project(pytester.path, CLEAN)
    pytester.makepyfile(test_app=ISOLATION_TESTS.replace("range(50)", "range(4)"))
    source = locate(Settings(root=pytester.path, alembic_config="alembic.ini"))
    # copies left by two other projects: one whose checkout is gone, one still there
    clusters = _runtime_base() / f"pytest-schemaguard-{os.getuid()}" / "clusters"
    gone = clusters / "app-0000000000000000-0000dead-0000000000000000"
    kept = clusters / "app-0000000000000000-0000a1fe-0000000000000000"
    for copy, origin in ((gone, pytester.path / "moved" / "alembic.ini"), (kept, Path(__file__))):
        (copy / "base").mkdir(parents=True, exist_ok=True)
        (copy / "PG_VERSION").write_text("15\n")
        Path(f"{str(copy)[:-16]}lock").write_text(f"{origin}\n")
    try:
        first = run(pytester, None, "-p", "xdist", "-n", "2")
        first.assert_outcomes(passed=4)
        first.stdout.fnmatch_lines_random(
            [
                TEMPLATE_LINE.format("built in * s and kept in the cached cluster"),
                TEMPLATE_LINE.format("reused from the cached cluster"),
            ]
        )
        # the next run reuses it, even when the checks of --schemaguard start the server
        again = run(pytester, None, "--schemaguard", "-v", "-k", "upgrade or test_each")
        assert again.ret == pytest.ExitCode.OK
        again.stdout.fnmatch_lines(
            [
                "alembic.ini::upgrade[[]3f2a9c1b7d40-create_orders[]] PASSED*",
                "test_app.py::test_each_sees_head_and_only_its_row[[]3[]] PASSED*",
                TEMPLATE_LINE.format("reused from the cached cluster"),
            ]
        )
        again.stdout.no_fnmatch_line("*built in*")
        assert not gone.exists()
        assert not Path(f"{str(gone)[:-16]}lock").exists()
        assert (kept / "PG_VERSION").is_file()
    finally:
        shutil.rmtree(kept, ignore_errors=True)
        Path(f"{str(kept)[:-16]}lock").unlink(missing_ok=True)
        # the cluster cache is the user's: leave no copy of this throwaway project in it
        for cluster in _runtime_base().glob(
            f"pytest-schemaguard-*/clusters/app-*-{source.project_key}-*"
        ):
            if cluster.is_dir():
                shutil.rmtree(cluster, ignore_errors=True)
            else:
                cluster.unlink(missing_ok=True)


REVISION_TESTS = f"""
import pytest
from sqlalchemy import text


def version(db):
    with db.engine.connect() as conn:
        return conn.execute(text("select version_num from alembic_version")).scalar()


def tables(db):
    with db.engine.connect() as conn:
        query = "select count(*) from pg_tables where schemaname = 'public'"
        return conn.execute(text(query)).scalar()


def test_at_a_prefix_head_and_base(schemaguard_database_at):
    assert version(schemaguard_database_at("3f2a")) == "3f2a9c1b7d40"
    assert version(schemaguard_database_at("8c1e5a2f9b63")) == "8c1e5a2f9b63"
    assert version(schemaguard_database_at("head")) == {HEAD!r}
    assert tables(schemaguard_database_at("base")) == 0


def test_unknown_revision(schemaguard_database_at):
    schemaguard_database_at("ffff")


def test_migrator_steps(schemaguard_migrator):
    m = schemaguard_migrator
    assert m.current is None
    m.migrate_up_to("3f2a9c")
    assert m.current == "3f2a9c1b7d40"
    m.insert_into("orders", [{{"total": 1}}, {{"total": 2}}])
    assert m.migrate_up_one() == "8c1e5a2f9b63"
    m.migrate_up_to("head")
    assert m.current == {HEAD!r}
    with pytest.raises(Exception, match="cannot upgrade by one: the database is at d07b4e6c2a15"):
        m.migrate_up_one()
    assert m.migrate_down_one() == {HEAD!r}
    m.migrate_down_to("3f2a9c")
    assert m.current == "3f2a9c1b7d40"
    assert m.connection.execute(text("select count(*) from orders")).scalar() == 2
    m.migrate_down_to("base")
    assert m.current is None
    assert tables(m.database) == 1  # alembic_version only
    with pytest.raises(Exception, match="cannot downgrade by one: the database is at base"):
        m.migrate_down_one()
"""


def test_revisions_unknown_revision_and_migrator(
    pytester: pytest.Pytester, inner_dsn: str, schemaguard_postgres: PostgresServer
) -> None:
    write_project(pytester.path, CLEAN)
    pytester.makepyfile(test_app=REVISION_TESTS)
    result = run(pytester, inner_dsn, "-rf")
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "schemaguard_database_at('ffff'): unknown revision 'ffff' in alembic.ini: not a "
            "revision id, a unique prefix of one, 'head' or 'base' (the revisions: "
            "3f2a9c1b7d40 (create orders), 8c1e5a2f9b63 (add status), "
            "d07b4e6c2a15 (index status))",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    source = locate(Settings(root=pytester.path, alembic_config="alembic.ini"))
    drop_templates(schemaguard_postgres, project_templates(schemaguard_postgres, source.stem))


def docs_example(page: str, marker: str) -> str:
    text = (DOCS / page).read_text()
    after = text.split(f"<!-- example: {marker}", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_docs_data_migration_example_runs(
    pytester: pytest.Pytester, inner_dsn: str, schemaguard_postgres: PostgresServer
) -> None:
    write_project(pytester.path, CLEAN)
    pytester.makepyfile(test_example=docs_example("data-migrations.md", "data-migration"))
    result = run(pytester, inner_dsn)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    source = locate(Settings(root=pytester.path, alembic_config="alembic.ini"))
    drop_templates(schemaguard_postgres, project_templates(schemaguard_postgres, source.stem))


def test_no_project_and_no_metadata_is_one_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(schemaguard_migrated_database):\n    pass\n")
    result = run(pytester, None)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*schemaguard: schemaguard_migrated_database needs the schema at head: no Alembic "
            "project was found * and no metadata is configured; set alembic_config = *"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


MODELS = """
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, Text

metadata = MetaData()
customers = Table("customers", metadata, Column("id", Integer, primary_key=True),
                  Column("name", Text, nullable=False))
invoices = Table("invoices", metadata, Column("id", Integer, primary_key=True),
                 Column("customer_id", ForeignKey("customers.id"), nullable=False))
"""


def test_without_alembic_the_template_comes_from_the_models(
    pytester: pytest.Pytester, inner_dsn: str, schemaguard_postgres: PostgresServer
) -> None:
    pytester.makepyfile(models=MODELS)
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\npythonpath = ["."]\n\n'
        '[tool.schemaguard]\nmetadata = "models:metadata"\n'
    )
    pytester.makepyfile(
        test_app="""
        import pytest
        from sqlalchemy import inspect, text


        @pytest.mark.parametrize("n", range(3))
        def test_models(schemaguard_migrated_database, n):
            engine = schemaguard_migrated_database.engine
            assert sorted(inspect(engine).get_table_names()) == ["customers", "invoices"]
            with engine.begin() as conn:
                conn.execute(text("insert into customers (name) values ('a')"))
                assert conn.execute(text("select count(*) from customers")).scalar() == 1


        def test_head_but_no_revisions(schemaguard_database_at):
            assert "invoices" in inspect(schemaguard_database_at("head").engine).get_table_names()
            schemaguard_database_at("3f2a")
        """
    )
    result = run(pytester, inner_dsn)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "schemaguard_database_at('3f2a'): a database at revision '3f2a' needs an Alembic "
            "project; this project's schema comes from metadata.create_all (only 'head' is "
            "known)",
            "schemaguard: application template schemaguard_tpl_*_* (metadata.create_all, "
            "1 file hashed): built in * s and kept in the DSN server",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    source = locate(Settings(root=pytester.path, metadata="models:metadata"))
    assert project_templates(schemaguard_postgres, source.stem) == [source.template_name]
    drop_templates(schemaguard_postgres, [source.template_name])


BOOTSTRAP_TESTS = """
from sqlalchemy import inspect, text


def tables(db):
    return sorted(inspect(db.engine).get_table_names())


def test_base_is_the_bootstrapped_schema(schemaguard_database_at):
    assert tables(schemaguard_database_at("base")) == ["customers", "products"]


def test_head(schemaguard_migrated_database):
    db = schemaguard_migrated_database
    assert tables(db) == ["alembic_version", "customers", "orders", "products"]
    assert "email" in [c["name"] for c in inspect(db.engine).get_columns("customers")]


def test_rows_put_in_before_the_first_revision(schemaguard_migrator):
    m = schemaguard_migrator
    m.insert_into("customers", [{"name": "ada"}, {"name": "grace"}])
    assert m.migrate_up_one() == "b1c0ffee0001"
    m.connection.execute(text("update customers set email = name || '@example.org'"))
    m.migrate_up_to("head")
    m.migrate_down_to("base")
    assert m.current is None
    rows = m.connection.execute(text("select name from customers order by id")).scalars()
    assert list(rows) == ["ada", "grace"]
"""


def test_bootstrap_project_and_quiet_alembic_logging(
    pytester: pytest.Pytester, inner_dsn: str, schemaguard_postgres: PostgresServer
) -> None:
    """The bootstrap hook's schema is base; env.py's fileConfig (Alembic's INFO logger to
    stderr) prints nothing, even with -s."""
    project = Path(__file__).parent / "data" / "projects" / "bootstrap_at_base"
    shutil.copytree(project, pytester.path, dirs_exist_ok=True)
    pytester.makepyfile(test_app=BOOTSTRAP_TESTS)
    result = run(pytester, inner_dsn, "-s")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    for lines in (result.stdout, result.stderr):
        lines.no_fnmatch_line("*Running upgrade*")
        lines.no_fnmatch_line("*alembic.runtime.migration*")
    source = locate(
        Settings(
            root=pytester.path, alembic_config="alembic.ini", bootstrap="hooks:create_legacy_tables"
        )
    )
    assert source.files == 4  # env.py, two revisions, and the bootstrap hook's module
    drop_templates(schemaguard_postgres, project_templates(schemaguard_postgres, source.stem))


def test_a_failing_revision_fails_the_first_test_with_its_step_and_the_others_in_a_line(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    broken = list(CLEAN)
    broken[1] = dataclasses.replace(
        broken[1], upgrade='op.execute("alter table orders add column status text default nope")'
    )
    # a transaction per migration: the revision before the failing one stays applied
    write_project(pytester.path, broken, env=ENV_CONNECTION.format(per_migration=True))
    pytester.makepyfile(
        test_app="""
        import pytest
        from pytest_schemaguard.databases.migrations import MigrationError


        def test_a(schemaguard_migrated_database):
            pass


        def test_b(schemaguard_migrated_database):
            pass


        @pytest.mark.parametrize("n", [1, 2])
        def test_at_head(schemaguard_database_at, n):
            schemaguard_database_at("head")


        def test_migrator_knows_where_a_failed_move_left_it(schemaguard_migrator):
            with pytest.raises(MigrationError, match="upgrade of 8c1e5a2f9b63 .* failed"):
                schemaguard_migrator.migrate_up_to("head")
            assert schemaguard_migrator.current == "3f2a9c1b7d40"
            assert schemaguard_migrator.migrate_down_one() == "3f2a9c1b7d40"
            assert schemaguard_migrator.current is None
        """
    )
    result = run(pytester, inner_dsn)
    result.assert_outcomes(errors=2, failed=2, passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "schemaguard: building the application template (head): upgrade of 8c1e5a2f9b63 "
            "(add status) failed",
            "    file: migrations/versions/0001_8c1e5a2f9b63.py",
            "    at:   0001_8c1e5a2f9b63.py:*: op.execute(*)",
            "    SQL:",
            "        alter table orders add column status text default nope",
            "    error:",
            "        FeatureNotSupported: cannot use column reference in DEFAULT expression",
        ]
    )
    # the second test's error is one line (the short summary may repeat the first's in full)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at setup of test_b _*",
            "schemaguard: no database at head: FeatureNotSupported: cannot use column reference "
            "in DEFAULT expression (see the error of test_app.py::test_a)",
            "=*",
        ],
        consecutive=True,
    )
    # the same error, asked for through schemaguard_database_at, is one line too
    for n in (1, 2):
        result.stdout.fnmatch_lines(
            [
                f"*_ test_at_head[[]{n}[]] _*",
                "schemaguard_database_at('head'): FeatureNotSupported: cannot use column "
                "reference in DEFAULT expression (see the error of test_app.py::test_a)",
            ]
        )
    result.stdout.no_fnmatch_line("*Traceback*")
