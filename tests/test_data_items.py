"""The ``data[<rev>]`` items: each revision upgraded and downgraded on tables with rows.

Inner pytest runs against the suite's real PostgreSQL. ``tests/data/projects/data_defects``
plants the three defects only rows show (a NOT NULL column without a default, SET NOT NULL
without a backfill, a downgrade that loses rows), a table no row can be generated for, and a
constraint only the generated values break; the clean projects pass every ``data`` item.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from defects import FIXTURES_DIR
from migration_projects import CLEAN, ENV_CONNECTION, Rev, write_project

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = Path(__file__).resolve().parent / "data" / "projects"


def esc(pattern: str) -> str:
    """An fnmatch pattern matching ``[`` and ``]`` literally (node ids have them)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(ch, ch) for ch in pattern)


def run(pytester: pytest.Pytester, dsn: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--schemaguard", f"--schemaguard-dsn={dsn}", "-p", "no:cacheprovider", "-rs", *args
    )


VERSIONS = "migrations/versions"
ADD_STATUS = [
    "data of d1a7a0000002 (add status) ({v}/d1a7a0000002_add_status.py)",
    "upgrade of d1a7a0000002 (add status) fails on tables with rows: ALTER TABLE orders ADD "
    'COLUMN status TEXT NOT NULL — column "status" of relation "orders" contains null values '
    "(seeded: orders 3 rows); add a server_default or backfill before SET NOT NULL",
    "file: {v}/d1a7a0000002_add_status.py",
    'at:   d1a7a0000002_add_status.py:18: op.add_column("orders", sa.Column("status", '
    "sa.Text(), nullable=False))",
    "SQL:",
    "    ALTER TABLE orders ADD COLUMN status TEXT NOT NULL",
    "error:",
    '    NotNullViolation: column "status" of relation "orders" contains null values',
]
REQUIRE_PHONE = [
    "data of d1a7a0000005 (require phone) ({v}/d1a7a0000005_require_phone.py)",
    "upgrade of d1a7a0000005 (require phone) fails on tables with rows: ALTER TABLE customers "
    'ALTER COLUMN phone SET NOT NULL — column "phone" of relation "customers" contains null '
    "values (seeded: customers 3 rows); add a server_default or backfill before SET NOT NULL",
    "file: {v}/d1a7a0000005_require_phone.py",
    "at:   d1a7a0000005_require_phone.py:18: op.alter_column(*nullable=False)",
    "SQL:",
    "    ALTER TABLE customers ALTER COLUMN phone SET NOT NULL",
]
TAG_COLOR = [
    "data of d1a7a0000006 (tag color) ({v}/d1a7a0000006_tag_color.py)",
    "downgrade of d1a7a0000006 (tag color) deletes rows of tables that exist before and after "
    "it: tags (3 rows after the upgrade, 0 after the downgrade)",
    "  fix: in downgrade() ({v}/d1a7a0000006_tag_color.py:20), keep the rows of the tables it "
    "does not drop (alter them in place rather than dropping and recreating them; delete "
    "nothing)",
]
UNSEEDABLE = (
    "*CheckNoteWarning: data of d1a7a0000004 (backfilled priority) (*): table readings could "
    "not be seeded (column gauge of type public.gauge: no value to generate); its upgrade ran on "
    "it empty"
)
GENERATED_VALUES = (
    "*CheckNoteWarning: data of d1a7a0000007 (email check) (*): upgrade of d1a7a0000007 (email "
    "check) fails on tables with rows: ALTER TABLE customers ADD CONSTRAINT ck_customers_email "
    "CHECK (position('@' in email) > 1) — check constraint \"ck_customers_email\" of relation "
    '"customers" is violated by some row (seeded: customers 3 rows); this depends on the '
    "generated values (see docs/checks/data.md), so it is not a failure: check it against real "
    "rows"
)


def lines(block: list[str]) -> list[str]:
    return [line.format(v=VERSIONS) for line in block]


@pytest.fixture
def defects(pytester: pytest.Pytester) -> Path:
    shutil.copytree(PROJECTS / "data_defects", pytester.path, dirs_exist_ok=True)
    return pytester.path


@pytest.mark.parametrize(
    ("xdist", "select", "passed"),
    [((), "upgrade or roundtrip or data", 21), (("-n", "2"), "data", 5)],
    ids=["serial", "xdist"],
)
def test_the_defects_only_rows_show_fail_their_data_item(
    pytester: pytest.Pytester,
    inner_dsn: str,
    defects: Path,
    xdist: tuple[str, ...],
    select: str,
    passed: int,
) -> None:
    result = run(pytester, inner_dsn, "-v", "-k", select, *xdist)
    # on empty tables every upgrade and round trip passes; with rows, three revisions fail
    # (each xdist worker notes the tables it cannot seed itself: 4 notes serially, 3 to 6 then)
    warnings = result.parseoutcomes().get("warnings", 0)
    result.assert_outcomes(passed=passed, failed=3, warnings=warnings)
    assert warnings == 4 if not xdist else 3 <= warnings <= 6
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # serial: "<node id> PASSED"; xdist: "[gw0] [ 42%] PASSED <node id>"
    shown = "*{1}*::{0} *" if xdist else "*::{0} {1}*"
    if not xdist:
        passing = shown.format("upgrade[d1a7a0000002-add_status]", "PASSED")
        result.stdout.fnmatch_lines([esc(passing)])
    for rev, outcome in [
        ("d1a7a0000001-customers_orders_tags", "PASSED"),
        ("d1a7a0000002-add_status", "FAILED"),
        ("d1a7a0000004-backfilled_priority", "PASSED"),
        ("d1a7a0000005-require_phone", "FAILED"),
        ("d1a7a0000006-tag_color", "FAILED"),
        ("d1a7a0000007-email_check", "PASSED"),
        ("d1a7a0000008-default_tags", "PASSED"),  # deletes only the rows its upgrade added
    ]:
        result.stdout.fnmatch_lines([esc(shown.format(f"data[{rev}]", outcome))])
    result.stdout.fnmatch_lines(lines(ADD_STATUS))
    result.stdout.fnmatch_lines(lines(REQUIRE_PHONE))
    result.stdout.fnmatch_lines(lines(TAG_COLOR))
    result.stdout.fnmatch_lines([UNSEEDABLE])
    result.stdout.fnmatch_lines([GENERATED_VALUES])
    if not xdist:
        # after 0007's note the walk goes on from a clone without rows, where the customers
        # the email check accepts cannot be generated, nor the orders that need them
        result.stdout.fnmatch_lines(
            [
                "*CheckNoteWarning: data of d1a7a0000008 (default tags) (*): table customers "
                'could not be seeded (new row for relation "customers" violates check '
                'constraint "ck_customers_email"); its upgrade ran on it empty',
                "*CheckNoteWarning: data of d1a7a0000008 (default tags) (*): table orders could "
                "not be seeded (foreign key orders_customer_id_fkey: customers has no rows to "
                "reference); its upgrade ran on it empty",
            ]
        )
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize("driver", ["psycopg", "pg8000"])
def test_a_lone_item_replays_its_ancestors_and_checks_only_its_revision(
    pytester: pytest.Pytester, inner_dsn: str, defects: Path, driver: str
) -> None:
    # pg8000 reports the server's error as its fields: the message is the same
    args = ("-k", "data and d1a7a0000005", "-o", f"schemaguard_driver={driver}")
    result = run(pytester, inner_dsn, *args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(lines(REQUIRE_PHONE))
    result.stdout.no_fnmatch_line("*d1a7a0000002*")  # its ancestor's defect is not reported


HOOK = '''
"""Rows of our own for two tables; the others get generated rows."""


def rows(request):
    if request.table == "customers":
        # the columns of the table at this revision: phone exists (NOT NULL) from 0005 on
        with_phone = "phone" in request.columns
        return [
            {"email": f"c{i}@example.com", **({"phone": f"555-{i}"} if with_phone else {})}
            for i in range(request.rows)
        ]
    if request.table == "readings":
        return [{"id": i + 1, "gauge": "(1.5,2.5)"} for i in range(request.rows)]
    if request.table == "tags" and request.upgrading == "d1a7a0000007":
        # tags lost its rows in 0006's downgrade: asked again before 0007
        raise ValueError("no tags today")
    return None
'''


def test_data_hook_gives_a_tables_rows(
    pytester: pytest.Pytester, inner_dsn: str, defects: Path
) -> None:
    (defects / "data_hooks.py").write_text(HOOK)
    result = run(pytester, inner_dsn, "-k", "data", "-o", "schemaguard_data_hook=data_hooks:rows")
    # real emails pass the email check, readings get rows: no notes; the defects remain, and
    # the hook's exception fails the item it was called for (the table got generated rows)
    result.assert_outcomes(passed=4, failed=4)
    result.stdout.fnmatch_lines(lines(REQUIRE_PHONE))
    result.stdout.fnmatch_lines(
        [
            f"data of d1a7a0000007 (email check) ({VERSIONS}/d1a7a0000007_email_check.py)",
            "data_hook raised for tags: ValueError: no tags today",
        ]
    )
    result.stdout.no_fnmatch_line("*CheckNoteWarning*")
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--schemaguard-data-rows=0",), None),
        (
            ("--schemaguard-data-rows=-1",),
            "ERROR: schemaguard: --schemaguard-data-rows = '-1' is not valid: expected a whole "
            "number, 0 or more",
        ),
        (
            ("-o", "schemaguard_data_hook=no_such_module:rows"),
            "ERROR: schemaguard: schemaguard_data_hook in * = 'no_such_module:rows': importing "
            "no_such_module failed: ModuleNotFoundError: No module named 'no_such_module'",
        ),
    ],
    ids=["zero-turns-them-off", "negative", "hook-not-importable"],
)
def test_data_rows_and_data_hook_settings(
    pytester: pytest.Pytester,
    inner_dsn: str,
    defects: Path,
    args: tuple[str, ...],
    expected: str | None,
) -> None:
    result = run(pytester, inner_dsn, "--collect-only", "-q", *args)
    if expected is None:
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines([esc("*::upgrade[d1a7a0000002-add_status]")])
        result.stdout.no_fnmatch_line("*data[[]*")
    else:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([expected])
        result.stderr.no_fnmatch_line("*Traceback*")


def test_a_revision_needing_its_parents_session_is_reported_once(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # 0002 leaves a temporary table 0003 reads: 0003 fails on its own, rows or not, so its
    # data item points at upgrade[...] instead of failing twice; the others pass
    shutil.copytree(PROJECTS / "session_state", pytester.path, dirs_exist_ok=True)
    result = run(pytester, inner_dsn, "-v", "-k", "upgrade or data")
    result.assert_outcomes(passed=8, failed=1, skipped=1, warnings=4)
    result.stdout.fnmatch_lines(
        [
            esc("*::data[5e55a0000002-take_notes_out_of_orders] PASSED*"),
            esc("*::data[5e55a0000003-order_notes] SKIPPED*"),
            esc("*::data[5e55a0000004-paid_at] PASSED*"),
        ]
    )
    # as for the upgrade items: the checks after it say they ran after one run from base
    result.stdout.fnmatch_lines(
        [
            "*CheckNoteWarning: data of 5e55a0000004 (paid at) (*): 5e55a0000003 (order notes) "
            "fails when upgraded on its own (see "
            + esc("upgrade[5e55a0000003-order_notes]);")
            + " this check ran after upgrading from base to it in one run"
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *: upgrade of 5e55a0000003 (order notes) fails without rows too (see "
            + esc("upgrade[5e55a0000003-order_notes])")
        ]
    )


# Every project under tests/data/projects and fixtures/ passes its data items (checked by
# hand: `pytest --schemaguard -k data` in a copy of each; clinnexus and seo_pipeline need the
# vector extension, which the suite's server may lack). The suite runs a cross-section: every
# driver, branches and a merge, a bootstrap at base, and the benchmark's generated project.
CLEAN_PROJECTS = [
    pytest.param(PROJECTS / "async_accounts", id="asyncpg"),
    pytest.param(PROJECTS / "psycopg2_settings", id="psycopg2"),
    pytest.param(PROJECTS / "branch_merge", id="branch_merge"),
    pytest.param(PROJECTS / "bootstrap_at_base", id="bootstrap_at_base"),
    pytest.param(FIXTURES_DIR / "infobot", id="fixtures-infobot"),
    pytest.param("CLEAN", id="migration_projects-CLEAN"),
    pytest.param("generated", id="gen_alembic_project-30"),
]


@pytest.mark.parametrize("project", CLEAN_PROJECTS)
def test_clean_projects_pass_every_data_item(
    pytester: pytest.Pytester, inner_dsn: str, project: Path | str
) -> None:
    if project == "CLEAN":
        write_project(pytester.path, CLEAN)
    elif project == "generated":
        generator = ROOT / "benchmarks" / "gen_alembic_project.py"
        out = pytester.path / "generated"
        subprocess.run(
            [sys.executable, str(generator), str(out), "--revisions", "30"],
            check=True,
            capture_output=True,
        )
        shutil.copytree(out, pytester.path, dirs_exist_ok=True)
        shutil.rmtree(out)
    else:
        assert isinstance(project, Path)
        shutil.copytree(project, pytester.path, dirs_exist_ok=True)
    result = run(pytester, inner_dsn, "-k", "data")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert outcomes.get("passed", 0) >= 1
    assert set(outcomes) <= {"passed", "deselected", "warnings", "warning"}, outcomes
    result.stdout.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------------ the values (no database)


@pytest.mark.parametrize(
    ("type_", "n", "expected"),
    [
        ("text", 3, "email 3"),
        ("character varying(8)", 7, "email 7"),
        ("character varying(5)", 123, "em123"),
        ("character(2)", 5, "e5"),
        ("integer", 4, "4"),
        ("numeric(10,2)", 2, "2"),
        ("boolean", 1, "true"),
        ("date", 32, "2024-02-01"),
        ("timestamp with time zone", 1, "2024-01-01 12:00:00+00"),
        ("uuid", 255, "00000000-0000-4000-8000-0000000000ff"),
        ("jsonb", 2, '{"n": 2}'),
        ("integer[]", 1, "{}"),
        ("public.email_address", 7, "email 7"),  # a domain over character varying(8)
        ("order_kind", 3, "retail"),  # an enum's labels in turn
        ("bit(8)", 5, "00000101"),  # exactly 8 bits
        ("bit(2)", 6, "10"),  # the last 2 bits of 110
        ("bit varying(3)", 9, "001"),  # at most 3 bits
        ("public.months", 2, "2 mons"),  # a domain over interval year to month: not days
        ("int4range", 2, "[2,3)"),
        ("tstzmultirange", 1, "{[2024-01-01 12:00:00+00,2024-01-02 12:00:00+00)}"),
        ("public.bits", 3, "011"),  # a domain over bit(3)
        ("public.tags", 1, "{}"),  # a domain over text[]
        ("numeric(4,4)", 2, "0.0002"),  # below 1
        ("numeric(1)", 12, "3"),  # one digit: 1 to 9 in turn
        ("hstore", 2, '"n"=>"2"'),
        ("extensions.vector(3)", 2, "[2,2,2]"),  # pgvector's, in the schema it was put in
        ("pg_snapshot", 1, None),
    ],
)
def test_seeded_values_fit_the_column_type(type_: str, n: int, expected: str | None) -> None:
    from pytest_schemaguard.data.seed import value_text
    from pytest_schemaguard.snapshot.model import Column

    base = type_.partition("(")[0]
    column = Column("email", type_, False, base_type=base)
    enums = {"order_kind": ("retail", "wholesale")}
    domains = {
        "public.email_address": "character varying(8)",
        "public.bits": "bit(3)",
        "public.tags": "text[]",
        "public.months": "interval year to month",
    }
    assert value_text(column, n, enums=enums, domains=domains) == expected


def test_simple_check_constraints_shape_the_values() -> None:
    from pytest_schemaguard.data.seed import check_rules, value_text
    from pytest_schemaguard.snapshot.model import Column, Constraint, Table

    table = Table(
        "public",
        "t",
        columns=(
            Column("qty", "integer", False, base_type="integer", position=1),
            Column(
                "status", "character varying(10)", False, base_type="character varying", position=2
            ),
            Column("starts_on", "date", False, base_type="date", position=3),
            Column("ends_on", "date", False, base_type="date", position=4),
        ),
        constraints=(
            Constraint("a", "check", "CHECK (((qty > 0) AND (qty <= 2)))", ("qty",)),
            Constraint(
                "b",
                "check",
                "CHECK (((status)::text = ANY ((ARRAY['new'::character varying, "
                "'paid'::character varying])::text[])))",
                ("status",),
            ),
            Constraint("c", "check", "CHECK ((ends_on > starts_on))", ("starts_on", "ends_on")),
        ),
    )
    rules = check_rules(table)
    rows = [
        [value_text(c, n, enums={}, domains={}, rules=rules) for c in table.columns]
        for n in (1, 2, 3)
    ]
    assert rows == [
        ["1", "new", "2024-01-01", "2024-01-02"],
        ["2", "paid", "2024-01-02", "2024-01-03"],
        ["1", "new", "2024-01-03", "2024-01-04"],
    ]


# A table of the column types seeded values once lacked (bit strings, multiranges, geometry,
# pg_lsn, "char", ...), most of them unique, with an exclusion constraint on a range: it is
# seeded, 0002 runs on its rows, and 0003 fails on them (the count shows they are there).
GADGETS = [
    Rev(
        "9a5e00000001",
        None,
        "gadgets",
        """
        op.execute("CREATE DOMAIN flags AS bit(4)")
        op.execute(
            \"\"\"
            CREATE TABLE gadgets (
                id integer PRIMARY KEY,
                bits bit(8) NOT NULL UNIQUE,
                mask varbit(16) NOT NULL UNIQUE,
                flags flags NOT NULL UNIQUE,
                mac macaddr8 NOT NULL UNIQUE,
                lsn pg_lsn NOT NULL UNIQUE,
                code "char" NOT NULL UNIQUE,
                term interval year to month NOT NULL UNIQUE,
                slots int4multirange NOT NULL UNIQUE,
                during tstzrange NOT NULL,
                keys uuid[] NOT NULL UNIQUE,
                docs jsonb[] NOT NULL,
                labels text[] NOT NULL CHECK (cardinality(labels) > 0),
                query tsquery NOT NULL,
                area box NOT NULL,
                zone circle NOT NULL,
                edge lseg NOT NULL,
                route path NOT NULL,
                shape polygon NOT NULL,
                axis line NOT NULL,
                ref oid NOT NULL,
                rate numeric(4,4) NOT NULL UNIQUE,
                EXCLUDE USING gist (during WITH &&)
            )
            \"\"\"
        )
        """,
        """
        op.drop_table("gadgets")
        op.execute("DROP DOMAIN flags")
        """,
    ),
    Rev(
        "9a5e00000002",
        "9a5e00000001",
        "widen mask",
        'op.execute("ALTER TABLE gadgets ALTER COLUMN mask TYPE varbit(32)")',
        'op.execute("ALTER TABLE gadgets ALTER COLUMN mask TYPE varbit(16)")',
    ),
    Rev(
        "9a5e00000003",
        "9a5e00000002",
        "gadget label",
        'op.execute("ALTER TABLE gadgets ADD COLUMN label text NOT NULL")',
        'op.drop_column("gadgets", "label")',
    ),
]


def seeded_and_failed_on_rows(
    result: pytest.RunResult, revision: str, statement: str, column: str, table: str
) -> None:
    """The revision adding a NOT NULL column fails on ``table``'s three seeded rows (so every
    table it needed was seeded), and no table was left unseeded."""
    relation = table.rpartition(".")[2]
    result.stdout.fnmatch_lines(
        [
            f"upgrade of {revision} fails on tables with rows: {statement} — column "
            f'"{column}" of relation "{relation}" contains null values (seeded: {table} 3 '
            "rows); add a server_default or backfill before SET NOT NULL",
        ]
    )
    result.stdout.no_fnmatch_line("*could not be seeded*")
    result.stdout.no_fnmatch_line("*Traceback*")


def test_tables_of_bit_strings_ranges_and_geometry_are_seeded(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, GADGETS)
    result = run(pytester, inner_dsn, "-v", "-k", "data")
    result.assert_outcomes(passed=2, failed=1, deselected=result.parseoutcomes()["deselected"])
    result.stdout.fnmatch_lines(
        [
            esc("*::data[9a5e00000001-gadgets] PASSED*"),
            esc("*::data[9a5e00000002-widen_mask] PASSED*"),
            esc("*::data[9a5e00000003-gadget_label] FAILED*"),
        ]
    )
    seeded_and_failed_on_rows(
        result,
        "9a5e00000003 (gadget label)",
        "ALTER TABLE gadgets ADD COLUMN label text NOT NULL",
        "label",
        "gadgets",
    )
    result.stdout.no_fnmatch_line("*CheckNoteWarning*")


# Values that SQL text mangles: a "%" (a placeholder to psycopg and psycopg2 when parameters
# are given) and backslashes (escapes when standard_conforming_strings is off), in enum labels,
# in the values a CHECK allows, and in the referenced keys a foreign key column takes.
AWKWARD = [
    Rev(
        "a4c0de000001",
        None,
        "coupons",
        """
        op.execute(r"CREATE TYPE coupon_kind AS ENUM ('50% off', 'a\\b')")
        op.execute(r\"\"\"
            CREATE TABLE codes (code text PRIMARY KEY CHECK (code IN ('x%y', 'p\\q', 'z')))
        \"\"\")
        op.execute(r\"\"\"
            CREATE TABLE coupons (
                id integer PRIMARY KEY,
                kind coupon_kind NOT NULL,
                discount text NOT NULL CHECK (discount IN ('10%', 'c:\\tmp')),
                code text NOT NULL REFERENCES codes
            )
        \"\"\")
        """,
        """
        op.drop_table("coupons")
        op.drop_table("codes")
        op.execute("DROP TYPE coupon_kind")
        """,
    ),
    Rev(
        "a4c0de000002",
        "a4c0de000001",
        "coupon note",
        'op.execute("ALTER TABLE coupons ADD COLUMN note text NOT NULL")',
        'op.drop_column("coupons", "note")',
    ),
]

ENV_SESSION_SETTING = ENV_CONNECTION.format(per_migration=False).replace(
    "def run(connection):\n",
    "def run(connection):\n"
    "    connection.exec_driver_sql('SET standard_conforming_strings = ' + SCS)\n",
)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
@pytest.mark.parametrize("conforming", ["on", "off"])
def test_values_with_percent_signs_and_backslashes_are_seeded(
    pytester: pytest.Pytester, inner_dsn: str, driver: str, conforming: str
) -> None:
    env = f"SCS = {conforming!r}\n" + ENV_SESSION_SETTING
    write_project(pytester.path, AWKWARD, settings=f'driver = "{driver}"\n', env=env)
    result = run(pytester, inner_dsn, "-k", "data")
    result.assert_outcomes(passed=1, failed=1, deselected=result.parseoutcomes()["deselected"])
    # coupons holds its three rows (their keys from the seeded codes)
    seeded_and_failed_on_rows(
        result,
        "a4c0de000002 (coupon note)",
        "ALTER TABLE coupons ADD COLUMN note text NOT NULL",
        "note",
        "coupons",
    )


# Names format_type() quotes (mixed case, a dot, a quote), in a schema whose name holds a dot:
# the types are found, and the tables (one referencing the other) seeded and counted.
QUOTED_TYPES = [
    Rev(
        "9e0d00000001",
        None,
        "sales",
        """
        op.execute('CREATE SCHEMA "Sales.Dept"')
        op.execute('CREATE TYPE "Sales.Dept"."OrderStatus" AS ENUM (\\'New\\', \\'Paid\\')')
        op.execute('''CREATE TYPE public."it's" AS ENUM ('a', 'b')''')
        op.execute(
            'CREATE DOMAIN "Sales.Dept"."Money" AS numeric(10, 2) CHECK (VALUE >= 0)'
        )
        op.execute(\"\"\"
            CREATE TABLE "Sales.Dept"."Customers" (id integer PRIMARY KEY)
        \"\"\")
        op.execute(\"\"\"
            CREATE TABLE "Sales.Dept"."Orders" (
                id integer PRIMARY KEY,
                customer integer NOT NULL REFERENCES "Sales.Dept"."Customers",
                status "Sales.Dept"."OrderStatus" NOT NULL,
                flavour public."it's" NOT NULL,
                total "Sales.Dept"."Money" NOT NULL,
                history "Sales.Dept"."OrderStatus"[] NOT NULL CHECK (cardinality(history) > 0)
            )
        \"\"\")
        """,
        """
        op.execute('DROP SCHEMA "Sales.Dept" CASCADE')
        op.execute('''DROP TYPE public."it's"''')
        """,
    ),
    Rev(
        "9e0d00000002",
        "9e0d00000001",
        "order note",
        'op.execute(\'ALTER TABLE "Sales.Dept"."Orders" ADD COLUMN note text NOT NULL\')',
        'op.execute(\'ALTER TABLE "Sales.Dept"."Orders" DROP COLUMN note\')',
    ),
]


def test_types_and_tables_whose_names_are_quoted_are_seeded(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    write_project(pytester.path, QUOTED_TYPES)
    result = run(pytester, inner_dsn, "-k", "data")
    result.assert_outcomes(passed=1, failed=1, deselected=result.parseoutcomes()["deselected"])
    seeded_and_failed_on_rows(
        result,
        "9e0d00000002 (order note)",
        'ALTER TABLE "Sales.Dept"."Orders" ADD COLUMN note text NOT NULL',
        "note",
        "Sales.Dept.Orders",
    )


# A column of JSON kept as text (optuna's `trial_user_attributes.value_json`): the application
# writes JSON there; a data migration parses each row in Python.
JSON_AS_TEXT = [
    Rev(
        "b1b1b1b1b1b1",
        "d07b4e6c2a15",
        "order attributes",
        """
        op.create_table(
            "order_attrs",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("attrs_json", sa.Text(), nullable=False),
        )
        """,
        'op.drop_table("order_attrs")',
    ),
    Rev(
        "b2b2b2b2b2b2",
        "b1b1b1b1b1b1",
        "attributes as jsonb",
        """
        import json

        op.add_column("order_attrs", sa.Column("attrs", postgresql.JSONB))
        bind = op.get_bind()
        for row in bind.execute(sa.text("SELECT id, attrs_json FROM order_attrs")).all():
            value = json.loads(row.attrs_json)
            bind.execute(
                sa.text("UPDATE order_attrs SET attrs = CAST(:v AS jsonb) WHERE id = :id"),
                {"v": json.dumps(value), "id": row.id},
            )
        """,
        'op.drop_column("order_attrs", "attrs")',
    ),
]


def test_a_revisions_code_that_cannot_parse_a_generated_value_gets_a_note(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # the generated text ('attrs_json 1') is not JSON: like a cast of generated text (a data
    # exception, SQLSTATE class 22), it depends on the generated values, so it is a note
    write_project(pytester.path, [*CLEAN, *JSON_AS_TEXT])
    result = run(pytester, inner_dsn, "-k", "data and b2b2b2", "-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*CheckNoteWarning: data of b2b2b2b2b2b2 (attributes as jsonb) (*): upgrade of "
            "b2b2b2b2b2b2 (attributes as jsonb) fails on tables with rows: value = "
            "json.loads(row.attrs_json) — Expecting value: line 1 column 1 (char 0) (seeded: "
            "order_attrs 3 rows, orders 3 rows); this depends on the generated values (see "
            "docs/checks/data.md), so it is not a failure: check it against real rows",
        ]
    )
    # with rows the application would write (a data_hook), it is checked for real and passes
    (pytester.path / "rows.py").write_text(
        "def rows(request):\n"
        "    if request.table == 'order_attrs':\n"
        "        return [{'attrs_json': '{\"n\": %d}' % i} for i in range(request.rows)]\n"
        "    return None\n"
    )
    write_project(pytester.path, [*CLEAN, *JSON_AS_TEXT], settings='data_hook = "rows:rows"\n')
    result = run(pytester, inner_dsn, "-k", "data and b2b2b2", "-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*CheckNoteWarning*")


def test_a_revisions_code_that_cannot_decompress_a_generated_value_gets_a_note(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # Airflow's 55297ae24532 decompresses a bytea column the application fills with zlib data;
    # the generated byte is not (zlib.error is no ValueError, and is the same case)
    blobs = [
        Rev(
            "b3b3b3b3b3b3",
            "d07b4e6c2a15",
            "blobs",
            'op.create_table("blobs", sa.Column("id", sa.Integer, primary_key=True), '
            'sa.Column("data", sa.LargeBinary(), nullable=False))',
            'op.drop_table("blobs")',
        ),
        Rev(
            "b4b4b4b4b4b4",
            "b3b3b3b3b3b3",
            "blob sizes",
            """
            import zlib

            op.add_column("blobs", sa.Column("size", sa.Integer))
            bind = op.get_bind()
            for row in bind.execute(sa.text("SELECT id, data FROM blobs")).all():
                size = len(zlib.decompress(row.data))
                bind.execute(
                    sa.text("UPDATE blobs SET size = :s WHERE id = :id"), {"s": size, "id": row.id}
                )
            """,
            'op.drop_column("blobs", "size")',
        ),
    ]
    write_project(pytester.path, [*CLEAN, *blobs])
    result = run(pytester, inner_dsn, "-k", "data and b4b4b4", "-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*CheckNoteWarning: data of b4b4b4b4b4b4 (blob sizes) (*): upgrade of b4b4b4b4b4b4 "
            "(blob sizes) fails on tables with rows: size = len(zlib.decompress(row.data)) — "
            "Error -5 while decompressing data: incomplete or truncated stream (seeded: blobs 3 "
            "rows, orders 3 rows); this depends on the generated values (see "
            "docs/checks/data.md), so it is not a failure: check it against real rows",
        ]
    )


def _nullable_total(project: Path) -> None:
    """orders.total nullable in CLEAN's first revision, so that the seeded rows hold a NULL
    there."""
    first = project / "migrations" / "versions" / "0000_3f2a9c1b7d40.py"
    first.write_text(
        first.read_text().replace(
            'sa.Column("total", sa.Numeric(10, 2), nullable=False, server_default="0")',
            'sa.Column("total", sa.Numeric(10, 2))',
        )
    )


def test_a_revisions_code_looking_up_a_null_as_a_key_says_where_the_none_comes_from(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # Neutron's 3b935b28e7a0: a dict of the rows' keys, looked up with a nullable column
    lookup = Rev(
        "b5b5b5b5b5b5",
        "d07b4e6c2a15",
        "lookup totals",
        """
        rows = op.get_bind().execute(sa.text("SELECT id, total FROM orders")).all()
        by_total = {r.total: r.id for r in rows if r.total is not None}
        for row in rows:
            op.execute(sa.text("SELECT :v").bindparams(v=by_total[row.total]))
        """,
        "pass",
    )
    write_project(pytester.path, [*CLEAN, lookup])
    _nullable_total(pytester.path)
    result = run(pytester, inner_dsn, "-k", "data and b5b5b5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "upgrade of b5b5b5b5b5b5 (lookup totals) fails on tables with rows: "
            "op.execute(sa.text(*)) — KeyError: None (seeded: orders 3 rows); the None is "
            "likely a NULL of the seeded rows (the last row of each table holds NULL in every "
            "nullable column): make the revision's code expect it, or make the column NOT NULL",
        ]
    )


def test_a_revisions_code_meeting_a_null_says_where_the_none_comes_from(
    pytester: pytest.Pytester, inner_dsn: str
) -> None:
    # a data migration that looks rows up by a nullable column and does not expect a NULL
    backfill = Rev(
        "b0b0b0b0b0b0",
        "d07b4e6c2a15",
        "backfill totals",
        """
        rows = op.get_bind().execute(sa.text("SELECT id, total FROM orders")).all()
        for row in rows:
            kept = {r.id: r for r in rows if r.total is not None}.get(row.id)
            op.execute(sa.text("SELECT :v").bindparams(v=kept.total * 2))
        """,
        "pass",
    )
    write_project(pytester.path, [*CLEAN, backfill])
    _nullable_total(pytester.path)
    result = run(pytester, inner_dsn, "-k", "data and b0b0b0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "upgrade of b0b0b0b0b0b0 (backfill totals) fails on tables with rows: "
            "op.execute(sa.text(*)) — 'NoneType' object has no attribute 'total' (seeded: "
            "orders 3 rows); the None is likely a NULL of the seeded rows (the last row of each "
            "table holds NULL in every nullable column): make the revision's code expect it, or "
            "make the column NOT NULL",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
