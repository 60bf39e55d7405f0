"""orm_parity on projects as they are found: revisions that import the models, models that
cannot be created, models registered by a function, the version table in a schema of its own,
models registered too late.

Each project under ``tests/data/projects/`` passes clean; each test then plants one defect and
asserts the lines a user reads.  Inner runs use the suite's server (``inner_dsn``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, MetaData, String, Table
from sqlalchemy.schema import CreateTable

from pytest_schemaguard.hooks import HookError, import_hook
from pytest_schemaguard.parity.migrated import snapshot_database
from pytest_schemaguard.parity.orm import ModelsError, create_models
from pytest_schemaguard.server import PostgresServer

PROJECTS = Path(__file__).resolve().parent / "data" / "projects"


def copy(name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = pytester.path / name
    shutil.copytree(PROJECTS / name, project)
    monkeypatch.chdir(project)
    return project


def run(pytester: pytest.Pytester, dsn: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--schemaguard", f"--schemaguard-dsn={dsn}", *args
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {path}"
    path.write_text(text.replace(old, new))


# --------------------------------------------------------------------- a revision uses a model


def test_revision_that_builds_a_constraint_from_a_model_is_no_difference(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    """b2c0ffee0002 builds CheckConstraint(Order.status.in_(...), name="ck_orders_status") at
    import, which attaches a second ck_orders_status to the model's table."""
    copy("shop", pytester, monkeypatch)
    result = run(pytester, inner_dsn, "-rA")
    result.assert_outcomes(passed=8 + 2 * 2)  # and data[<rev>], safety[<rev>] of 2 revisions
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["PASSED alembic.ini::orm_parity"])
    result.stdout.no_fnmatch_line("*already exists*")
    result.stdout.no_fnmatch_line("*alembic autogenerate would emit*")


def test_revision_that_uses_a_model_still_lets_a_real_difference_through(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    project = copy("shop", pytester, monkeypatch)
    edit(project / "shop" / "models.py", "Numeric(10, 2))", "Numeric(12, 2))")
    result = run(pytester, inner_dsn, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "orm_parity: the models (shop.models:Base.metadata) against the migrations at head",
            "the models differ from the schema the migrations build at head:",
            "  column public.orders.total: type numeric(10,2) → numeric(12,2) "
            "(model Order.total, shop/models.py:25)",
            "1 schema difference between migrations and models: 1 changed",
            "alembic autogenerate sees 1 operation(s):",
            "  modify_type public.orders.total: NUMERIC(10, 2) → NUMERIC(12, 2)",
        ]
    )
    result.stdout.no_fnmatch_line("*ck_orders_status*")
    result.stdout.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------ where in the models to look


def test_difference_names_the_line_of_table_args_and_leaves_migration_only_lines_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    """An index the model declares in ``__table_args__`` and the migrations lack points at
    its line; a column the model dropped exists only in the migrations: nothing in the models
    to point at, so its line is as it always was."""
    project = copy("shop", pytester, monkeypatch)
    models = project / "shop" / "models.py"
    edit(models, "CheckConstraint, Numeric", "CheckConstraint, Index, Numeric")
    edit(
        models,
        'name="ck_orders_status"),\n',
        'name="ck_orders_status"),\n        Index("ix_orders_status", "status"),\n',
    )
    edit(models, "    total: Mapped[Decimal] = mapped_column(Numeric(10, 2))\n", "")
    result = run(pytester, inner_dsn, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "the models differ from the schema the migrations build at head:",
            "  column public.orders.total: present only in migrations",
            "  index public.orders.ix_orders_status: present only in models "
            "(model Order.__table_args__, shop/models.py:21)",
            "2 schema differences between migrations and models: *",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_difference_in_a_plain_table_names_its_column_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    """``entry_tags = Table("entry_tags", Base.metadata, Column("tag", ...))``: no class maps
    it; the line names the variable and the ``Column(...)`` line."""
    project = copy("ledger", pytester, monkeypatch)
    edit(project / "ledger" / "models.py", "String(40)", "String(60)")
    result = run(pytester, inner_dsn, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "the models differ from the schema the migrations build at head:",
            "  column public.entry_tags.tag: type character varying(40) → character varying(60) "
            "(Table entry_tags.c.tag, ledger/models.py:36)",
            "1 schema difference between migrations and models: 1 changed",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


# --------------------------------------------------------------- models that cannot be created


def test_foreign_key_to_a_unique_column_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    copy("billing", pytester, monkeypatch)
    result = run(pytester, inner_dsn)
    result.assert_outcomes(passed=6 + 2)  # and data[<rev>], safety[<rev>] of 1 revision
    assert result.ret == pytest.ExitCode.OK


def test_models_that_cannot_be_created_name_the_object_and_keep_alembics_view(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    """The models lose the unique constraint their foreign key points at: create_all fails,
    and Alembic's autogenerate (which needs no create_all) shows why."""
    project = copy("billing", pytester, monkeypatch)
    edit(
        project / "billing" / "models.py",
        '    __table_args__ = (UniqueConstraint("email", name="uq_customers_email"),)\n',
        "",
    )
    result = run(pytester, inner_dsn, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "orm_parity: the models (billing.models:Base.metadata) against the migrations at head",
            "creating the models (metadata.create_all) failed at foreign key "
            "public.invoices.fk_invoices_customer_email (customer_email) → public.customers "
            "(email):",
            "    InvalidForeignKey: there is no unique constraint matching given keys for "
            'referenced table "customers"',
            "    SQL: CREATE TABLE invoices (*CONSTRAINT fk_invoices_customer_email FOREIGN "
            "KEY(customer_email) REFERENCES customers (email) )",
            "alembic autogenerate sees 1 operation(s):",
            "  remove_constraint uq_customers_email (UniqueConstraint on public.customers (email))",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------ models registered by a function


def test_metadata_from_a_function_that_imports_the_models(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    copy("inventory", pytester, monkeypatch)
    result = run(pytester, inner_dsn, "-rA")
    result.assert_outcomes(passed=6 + 2)  # and data[<rev>], safety[<rev>] of 1 revision
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["PASSED alembic.ini::orm_parity"])


def test_metadata_from_a_function_reports_a_model_difference(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    project = copy("inventory", pytester, monkeypatch)
    edit(project / "inventory" / "models" / "items.py", "String(32)", "String(64)")
    result = run(pytester, inner_dsn, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "orm_parity: the models (inventory.models:load) against the migrations at head",
            "the models differ from the schema the migrations build at head:",
            "  column public.items.sku: type character varying(32) → character varying(64) "
            "(model Item.sku, inventory/models/items.py:13)",
        ]
    )


def test_metadata_with_no_tables_says_so_in_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    """The model modules are imported only by load(): Base.metadata alone has no tables."""
    project = copy("inventory", pytester, monkeypatch)
    edit(project / "pyproject.toml", '"inventory.models:load"', '"inventory.models:Base.metadata"')
    result = run(pytester, inner_dsn, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "orm_parity: the models (inventory.models:Base.metadata) against the migrations "
            "at head",
            "inventory.models:Base.metadata holds no tables (are the model modules imported "
            "only when the application starts?): point metadata at a function that imports "
            'them and returns the MetaData, e.g. metadata = "myapp.models:load_models"',
            "=*short test summary info*",
        ]
    )
    result.stdout.no_fnmatch_line("*present only in migrations*")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "    return MODEL_MODULES",
            "*MetadataError: [[]tool.schemaguard] metadata in pyproject.toml = "
            "'inventory.models:load' returned a tuple, not a sqlalchemy MetaData",
        ),
        (
            "    return Base",
            "*'inventory.models:load' returned the class Base, not a sqlalchemy MetaData; "
            "return Base.metadata",
        ),
        (
            '    raise RuntimeError("settings are not configured")',
            "*'inventory.models:load': calling it failed: RuntimeError: settings are not "
            "configured (at inventory/models/__init__.py:22)",
        ),
    ],
    ids=["tuple", "base-class", "raises"],
)
def test_metadata_function_that_does_not_return_a_metadata(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    inner_dsn: str,
    body: str,
    message: str,
) -> None:
    project = copy("inventory", pytester, monkeypatch)
    edit(project / "inventory" / "models" / "__init__.py", "    return Base.metadata", body)
    result = run(pytester, inner_dsn, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*Traceback*")


# -------------------------------------------------------- the version table in its own schema


def test_version_table_in_its_own_schema_is_no_difference(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    """env.py: version_table_schema="meta", version_table="ledger_versions"."""
    copy("ledger", pytester, monkeypatch)
    result = run(pytester, inner_dsn, "-rA")
    result.assert_outcomes(passed=6 + 2)  # and data[<rev>], safety[<rev>] of 1 revision
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["PASSED alembic.ini::orm_parity"])
    result.stdout.no_fnmatch_line("*meta*")


def test_version_table_in_its_own_schema_lets_a_real_difference_through(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_dsn: str
) -> None:
    project = copy("ledger", pytester, monkeypatch)
    edit(project / "ledger" / "models.py", "Numeric(14, 2))", "Numeric(14, 2), nullable=True)")
    result = run(pytester, inner_dsn, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "the models differ from the schema the migrations build at head:",
            "  column public.entries.amount: nullable false → true "
            "(model Entry.amount, ledger/models.py:28)",
            "1 schema difference between migrations and models: 1 changed",
            "alembic autogenerate sees 1 operation(s):",
            "  modify_nullable public.entries.amount: False → True",
        ]
    )
    result.stdout.no_fnmatch_line("*schema meta*")
    result.stdout.no_fnmatch_line("*ledger_versions*")


def _create(server: PostgresServer, metadata: MetaData) -> str:
    db = server.create_database()
    try:
        with pytest.raises(ModelsError) as excinfo:
            create_models(db.url, metadata)
        # nothing of the attempt is left behind
        assert snapshot_database(db.url).tables == ()
    finally:
        server.drop_database(db)
    return str(excinfo.value)


def test_create_models_names_a_foreign_key_added_after_the_tables(
    schemaguard_postgres: PostgresServer,
) -> None:
    metadata = MetaData()
    Table("a", metadata, Column("id", Integer, primary_key=True), Column("code", String(5)))
    Table(
        "b",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("a_code", String(5), ForeignKey("a.code", use_alter=True, name="fk_b_a_code")),
    )
    assert _create(schemaguard_postgres, metadata).splitlines() == [
        "creating the models (metadata.create_all) failed at foreign key "
        "public.b.fk_b_a_code (a_code) → public.a (code):",
        "    InvalidForeignKey: there is no unique constraint matching given keys for "
        'referenced table "a"',
        "    SQL: ALTER TABLE b ADD CONSTRAINT fk_b_a_code FOREIGN KEY(a_code) REFERENCES a (code)",
    ]


def test_create_models_names_the_table_when_its_foreign_keys_are_not_the_cause(
    schemaguard_postgres: PostgresServer,
) -> None:
    """Two CHECK constraints of one name on a table (what a revision that builds one from a
    model column at import leaves on the original models)."""
    metadata = MetaData()
    Table("parent", metadata, Column("id", Integer, primary_key=True))
    child = Table(
        "child",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("parent_id", Integer, ForeignKey("parent.id")),
        CheckConstraint("id > 0", name="ck_child_id"),
        CheckConstraint("id > 0", name="ck_child_id"),
    )
    lines = _create(schemaguard_postgres, metadata).splitlines()
    assert lines[:2] == [
        "creating the models (metadata.create_all) failed at table public.child:",
        '    DuplicateObject: check constraint "ck_child_id" already exists',
    ]
    assert lines[2].startswith("    SQL: CREATE TABLE child (")
    # the search for the culprit left the models as they were
    assert "FOREIGN KEY(parent_id) REFERENCES parent (id)" in str(CreateTable(child))


# --------------------------------------------------------------------------------- hooks


def test_hook_modules_resolve_from_the_configuration_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The module is found next to the configuration, whatever the current directory."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "sg_hooks_probe.py").write_text("def build(conn):\n    return conn\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "sg_hooks_probe", raising=False)
    where = "bootstrap in pyproject.toml"
    assert import_hook("sg_hooks_probe:build", root, where=where)(42) == 42
    with pytest.raises(HookError) as missing:
        import_hook("sg_hooks_probe:nope", root, where=where)
    assert str(missing.value) == (
        f"{where} = 'sg_hooks_probe:nope': sg_hooks_probe has no attribute 'nope'"
    )
    with pytest.raises(HookError) as absent:
        import_hook("sg_no_such_module:f", root, where=where)
    assert str(absent.value) == (
        f"{where} = 'sg_no_such_module:f': importing sg_no_such_module failed: "
        "ModuleNotFoundError: No module named 'sg_no_such_module'"
    )
