"""Real histories: branches, merges, several heads, irreversible revisions, start + bootstrap,
and the different ways env.py finds its database and runs its transactions."""

from __future__ import annotations

import pytest
from migration_projects import (
    CLEAN,
    ENV_ASYNC,
    ENV_CONNECTION,
    ENV_URL_ONLY,
    ENV_VARIABLE,
    Rev,
    run_checks,
    write_project,
)


def table(name: str) -> tuple[str, str]:
    return (
        f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))',
        f'op.drop_table("{name}")',
    )


BRANCHED = [
    Rev("1a0000000001", None, "base", *table("base")),
    Rev("2b0000000002", "1a0000000001", "left", *table("lefty")),
    Rev("3c0000000003", "1a0000000001", "right", *table("righty")),
]
MERGE = Rev(
    "4d0000000004",
    ("2b0000000002", "3c0000000003"),
    "merge with index",
    'op.create_index("ix_lefty_id", "lefty", ["id"])',
    'op.drop_index("ix_lefty_id", table_name="lefty")',
)


def test_branches_and_a_merge_round_trip(pytester: pytest.Pytester, inner_dsn: str) -> None:
    write_project(pytester.path, [*BRANCHED, MERGE])
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=10)
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_merge_whose_downgrade_forgets_something_is_caught(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    forgetful = Rev(MERGE.revision, MERGE.down, MERGE.message, MERGE.upgrade, "pass")
    write_project(pytester.path, [*BRANCHED, forgetful], settings="irreversible = []\n")
    result = run_checks(pytester, inner_dsn, "-k", "roundtrip and 4d00")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["  downgrade of 4d0000000004 (merge with index) left index public.lefty.ix_lefty_id"]
    )


def test_several_heads_need_the_heads_setting(pytester: pytest.Pytester, inner_dsn: str) -> None:
    write_project(pytester.path, BRANCHED)
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(
        ["2 head(s) (2b0000000002 (left), 3c0000000003 (right)), expected 1: merge them*"]
    )
    write_project(pytester.path, BRANCHED, settings="heads = 2\n")
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=8)


def test_irreversible_revisions_are_upgraded_never_downgraded(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    one_way = Rev(
        "2b0000000002",
        "1a0000000001",
        "data fix",
        'op.execute("CREATE TABLE archive AS SELECT 1 AS id")',
        'raise RuntimeError("cannot be undone")',
    )
    after = Rev("3c0000000003", "2b0000000002", "after", *table("after_fix"))
    write_project(
        pytester.path,
        [BRANCHED[0], one_way, after],
        settings='irreversible = ["2b0000000002"]\n',
    )
    result = run_checks(pytester, inner_dsn, "-v")
    # history, 3 upgrades, 2 round trips (not the irreversible one), the cycle above it
    result.assert_outcomes(passed=7)
    result.stdout.no_fnmatch_line("*roundtrip?2b00*")


def test_start_and_bootstrap(pytester: pytest.Pytester, inner_dsn: str) -> None:
    # the project began with create_all + stamp: revision 1 is not replayable on its own
    broken_first = Rev("1a0000000001", None, "legacy", 'op.execute("SELECT nonsense")', "pass")
    later = Rev("2b0000000002", "1a0000000001", "add note", *table("notes"))
    write_project(
        pytester.path,
        [broken_first, later],
        settings='start = "1a0000000001"\nbootstrap = "boot:create_all"\n',
    )
    (pytester.path / "boot.py").write_text(
        "def create_all(connection):\n"
        "    connection.exec_driver_sql('CREATE TABLE legacy (id int primary key)')\n"
    )
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*::history PASSED*",
            "*::upgrade?2b0000000002-add_note? PASSED*",
            "*::roundtrip?2b0000000002-add_note? PASSED*",
            "*::cycle PASSED*",
        ]
    )


@pytest.mark.parametrize(
    ("env", "settings"),
    [
        pytest.param(ENV_CONNECTION.format(per_migration=True), "", id="per-migration"),
        pytest.param(ENV_URL_ONLY, "", id="sqlalchemy-url"),
        pytest.param(ENV_VARIABLE, 'database_url_env = "APP_DATABASE_URL"\n', id="env-var"),
    ],
)
def test_every_way_env_py_finds_the_database(
    pytester: pytest.Pytester, inner_dsn: str, env: str, settings: str
) -> None:
    broken = list(CLEAN)
    broken[1] = Rev(
        CLEAN[1].revision,
        CLEAN[1].down,
        CLEAN[1].message,
        CLEAN[1].upgrade,
        'op.drop_column("orders", "status")',
    )
    # and a revision that leaves the transaction env.py configured (autocommit_block)
    concurrently = Rev(
        "e5f0a1b2c3d4",
        CLEAN[2].revision,
        "index total concurrently",
        """
        with op.get_context().autocommit_block():
            op.execute("CREATE INDEX CONCURRENTLY ix_orders_total ON orders (total)")
        """,
        """
        with op.get_context().autocommit_block():
            op.execute("DROP INDEX CONCURRENTLY ix_orders_total")
        """,
    )
    write_project(pytester.path, [*broken, concurrently], env=env, settings=settings)
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=8, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*::roundtrip?e5f0a1b2c3d4-index_total_concurrently? PASSED*",
            "  downgrade of 8c1e5a2f9b63 (add status) left type public.order_status",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_async_env_py_through_the_config_fixture(pytester: pytest.Pytester, inner_dsn: str) -> None:
    conftest = """
        import pytest
        from alembic.config import Config


        @pytest.fixture(scope="session")
        def schemaguard_alembic_config():
            def make(url):
                cfg = Config("alembic.ini")
                cfg.attributes["async_url"] = url  # psycopg 3 is async-capable
                return cfg

            return make
    """
    write_project(pytester.path, CLEAN, env=ENV_ASYNC, conftest=conftest)
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=8)


# An upgrade that is not deterministic: it indexes notes.id only when it has already run once
# in this database (a module-level counter, per database: each pass migrates a fresh clone).
FLAKY = Rev(
    "2b0000000002",
    "1a0000000001",
    "flaky notes",
    """
    database = op.get_bind().exec_driver_sql("select current_database()").scalar()
    RUNS[database] = RUNS.get(database, 0) + 1
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))
    if RUNS[database] > 1:
        op.create_index("ix_notes_id", "notes", ["id"])
    """,
    'op.drop_table("notes")',
    module="RUNS = {}",
)


def test_an_upgrade_building_another_schema_the_second_time_fails_roundtrip_and_cycle(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, [BRANCHED[0], FLAKY])
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=4, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*::roundtrip?2b0000000002-flaky_notes? FAILED*",
            "*::cycle FAILED*",
            "roundtrip of 2b0000000002 (flaky notes) (migrations/versions/0001_2b0000000002.py)",
            "upgrading 2b0000000002 (flaky notes) again built a different schema than the first "
            "time:",
            "  upgrading 2b0000000002 (flaky notes) again created an extra index "
            "public.notes.ix_notes_id",
            "cycle base -> head -> base -> head of alembic.ini",
            "upgrading to head again built a different schema than the first time:",
            "  upgrading to head a second time created an extra index public.notes.ix_notes_id",
        ]
    )
    # the downgrade itself is right: nothing is reported as left behind
    result.stdout.no_fnmatch_line("*did not restore the schema*")
    result.stdout.no_fnmatch_line("*Traceback*")


def chain(count: int) -> list[Rev]:
    """``count`` revisions in a line, each creating a table with an index."""
    revisions = []
    for i in range(1, count + 1):
        revisions.append(
            Rev(
                f"{i:012x}",
                f"{i - 1:012x}" if i > 1 else None,
                f"table {i}",
                f'op.create_table("t{i}", sa.Column("id", sa.Integer, primary_key=True))\n'
                f'op.create_index("ix_t{i}_id", "t{i}", ["id"])',
                f'op.drop_table("t{i}")',
            )
        )
    return revisions


COUNTING_ENV = (
    "from pathlib import Path\n\n"
    'with open(Path(__file__).parent.parent / "env_runs.txt", "a") as runs:\n'
    '    runs.write("run\\n")\n' + ENV_CONNECTION.format(per_migration=False)
)


@pytest.mark.parametrize("count", [3, 6])
def test_env_py_runs_once_for_the_whole_run_whatever_the_number_of_revisions(
    pytester: pytest.Pytester, inner_dsn: str, count: int
) -> None:
    # the speed design: one env.py pass yields every upgrade/downgrade step of every item
    write_project(pytester.path, chain(count), env=COUNTING_ENV)
    result = run_checks(pytester, inner_dsn, "-v")
    result.assert_outcomes(passed=2 * count + 2)
    runs = (pytester.path / "env_runs.txt").read_text().splitlines()
    assert len(runs) == 1, f"env.py ran {len(runs)} times for {count} revisions"


STEP_COUNTING_ENV = """
from pathlib import Path

from alembic import context

steps = Path(__file__).parent.parent / "steps.txt"


def count(ctx, step, heads, run_args):
    with open(steps, "a") as f:
        f.write(("up" if step.is_upgrade else "down") + "\\n")


context.configure(connection=context.config.attributes["connection"], on_version_apply=count)
with context.begin_transaction():
    context.run_migrations()
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_each_revision_is_upgraded_a_bounded_number_of_times(
    pytester: pytest.Pytester, inner_dsn: str, xdist: list[str]
) -> None:
    # serially: up, down, up per revision and the cycle's base -> head -> base -> head. Under
    # xdist a worker runs a revision's upgrade and roundtrip in one pass and carries on from
    # there, never replaying every ancestor in a new clone for each item (quadratic).
    count = 16
    write_project(pytester.path, chain(count), env=STEP_COUNTING_ENV)
    result = run_checks(pytester, inner_dsn, *xdist)
    result.assert_outcomes(passed=2 * count + 2)
    ups = (pytester.path / "steps.txt").read_text().split().count("up")
    workers = 2 if xdist else 1
    # each worker: up, down, up for each revision it meets; the cycle: up to head once more
    assert ups <= workers * 2 * count + count + 2, f"{ups} upgrade steps for {count} revisions"


def test_each_revision_file_is_imported_once(pytester: pytest.Pytester, inner_dsn: str) -> None:
    # module-level code of a revision file (a registry, a logger, a print) runs once per run,
    # as in `alembic upgrade head`: collecting the items and running the passes share the files
    revisions = chain(3)
    for rev in revisions:
        rev.module = (
            "from pathlib import Path\n"
            'with open(Path(__file__).parents[2] / "imports.txt", "a") as seen:\n'
            "    seen.write(Path(__file__).stem + '\\n')\n"
        )
    write_project(pytester.path, revisions)
    result = run_checks(pytester, inner_dsn)
    result.assert_outcomes(passed=2 * 3 + 2)
    assert result.ret == pytest.ExitCode.OK
    imported = (pytester.path / "imports.txt").read_text().split()
    assert sorted(imported) == sorted(f"{i:04d}_{r.revision}" for i, r in enumerate(revisions))
