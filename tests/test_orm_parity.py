"""The orm_parity check, as users meet it: inner pytest runs of fixture projects.

Each test copies a clean fixture project, plants a defect from the catalogue (or changes the
configuration), and runs ``pytest --schemaguard -k orm_parity`` in a subprocess against the
suite's server (or the embedded PostgreSQL when the project needs an extension the suite's
server lacks).
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest
from defects import DEFECTS, FIXTURES_DIR, MODELS, apply_defect, copy_project
from sqlalchemy import Column, Integer, MetaData, Table, Text

from pytest_schemaguard import binaries
from pytest_schemaguard.errors import ServerError
from pytest_schemaguard.parity.orm import (
    alembic_view,
    is_server_name,
    parity_ignore_rules,
    split_differences,
)
from pytest_schemaguard.parity.sources import ModelSources, Source, locate_models
from pytest_schemaguard.server import Database, PostgresServer
from pytest_schemaguard.snapshot.compare import Difference

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PROJECTS = sorted(
    p.name
    for p in FIXTURES_DIR.iterdir()
    if (p / "pyproject.toml").is_file()
    and "metadata" in tomllib.loads((p / "pyproject.toml").read_text())["tool"]["schemaguard"]
)
ORM_DEFECTS = sorted(name for name, d in DEFECTS.items() if d.check == "orm_parity")


def server_args(postgres: PostgresServer, project: Path) -> list[str]:
    """The suite's server when it has the extensions the project needs, else the embedded one."""
    settings = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["schemaguard"]
    needed = settings.get("extensions", [])
    if all(postgres.has_extension(name) for name in needed):
        return [f"--schemaguard-dsn={postgres.url}"]
    try:
        binaries.find_binaries("embedded", root=project, extensions=needed)
    except ServerError as exc:
        pytest.skip(f"{project.name} needs {', '.join(needed)}, which no server here has: {exc}")
    return ["--schemaguard-postgres=embedded"]


def run_checks(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    project: Path,
    postgres: PostgresServer,
    *args: str,
) -> pytest.RunResult:
    monkeypatch.chdir(project)
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--schemaguard", *server_args(postgres, project), *args
    )


def object_line(obj: str) -> str:
    """A pattern for the difference line naming ``obj`` exactly (``index public.articles.ix_a``:
    indexes, constraints and columns are named after their table)."""
    return f"  {obj}: *"


def set_key(project: Path, line: str) -> None:
    """Add a line to the project's [tool.schemaguard] table."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert "[tool.schemaguard]\n" in text
    pyproject.write_text(text.replace("[tool.schemaguard]\n", f"[tool.schemaguard]\n{line}\n"))


# ------------------------------------------------------------------------------ clean projects


@pytest.mark.parametrize("name", PROJECTS)
def test_clean_project_passes(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    name: str,
) -> None:
    project = copy_project(name, pytester.path)
    result = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*Traceback*")


def test_preamble_sql_runs_as_written(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
) -> None:
    """A ":name" is no bind parameter and a "%" no placeholder in a preamble statement; one
    that fails says which, with the server's message."""
    project = copy_project("timetracker", pytester.path)
    set_key(project, """preamble_sql = ["SELECT ':tenant', '50%'", 'SELECT 1 / 0 AS "x%"']""")
    result = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            'preamble_sql statement failed: SELECT 1 / 0 AS "x%"',
            "    *division by zero*",
        ]
    )
    result.stdout.no_fnmatch_line("*SELECT ':tenant'*")
    result.stdout.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------------------------ the catalogue


# Each drift, the line the catalog comparison prints, and what Alembic autogenerate sees
# (None: no difference); checked on the run of the defect test below.
DRIFTS: dict[str, tuple[str, str | None]] = {
    "model_uuid_where_integer": (
        "  column public.time_entries.id: type integer → uuid "
        "(model TimeEntry.id, timetracker/models.py:116)",
        "  modify_type public.time_entries.id: INTEGER → UUID",
    ),
    "model_enum_labels_differ": (
        "  type public.article_status: labels *skipped* → *duplicate* "
        "(model Article.status, src/newsbot/db/models.py:63)",
        None,
    ),
    "model_check_differs": (
        "  constraint public.dlq.ck_dlq_attempts_non_negative: *attempts >= 0* → *attempts > 0*) "
        "(model DeadLetter.__table_args__, src/newsbot/db/models.py:77)",
        None,
    ),
    "model_partial_index_differs": (
        "  index public.time_entries.ux_time_entries_owner_active: predicate *end_time IS NULL* → "
        "*task_id IS NOT NULL*) (model TimeEntry.__table_args__, timetracker/models.py:130)",
        None,
    ),
    "model_server_default_differs": (
        "  column public.dlq.attempts: default 0 → 1 "
        "(model DeadLetter.attempts, src/newsbot/db/models.py:83)",
        "  modify_default public.dlq.attempts: 0 → 1",
    ),
    "model_nullability_differs": (
        "  column public.articles.summary: nullable true → false "
        "(model Article.summary, src/newsbot/db/models.py:60)",
        "  modify_nullable public.articles.summary: True → False",
    ),
}


def test_every_drift_is_a_model_defect_of_the_catalogue() -> None:
    assert set(DRIFTS) <= set(ORM_DEFECTS)


@pytest.mark.parametrize("name", ORM_DEFECTS)
def test_model_defect_is_caught_and_named(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    schemaguard_postgres: PostgresServer,
    name: str,
) -> None:
    """Each model defect is caught from the catalog and named; for the drifts above, Alembic's
    own comparison is shown next to it (the same run asserts both).

    Enum labels, CHECK expressions and partial-index predicates are invisible to
    ``alembic check`` (autogenerate): its view says "no difference" while orm_parity fails.
    """
    defect = DEFECTS[name]
    project = copy_project(defect.project, pytester.path)
    apply_defect(name, project)
    result = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*orm_parity: the models (*) against the migrations at head",
            "the models differ from the schema the migrations build at head:",
            object_line(defect.object),
        ]
    )
    out = result.stdout.str()
    for mention in defect.mentions:
        assert mention in out
    if name in DRIFTS:
        ours, alembic = DRIFTS[name]
        if alembic is None:
            result.stdout.fnmatch_lines([ours, "*", "alembic autogenerate sees no difference"])
        else:
            result.stdout.fnmatch_lines([ours, "*", "alembic autogenerate sees * operation(s):"])
            result.stdout.fnmatch_lines([alembic])
    result.stdout.no_fnmatch_line("*Traceback*")


# ------------------------------------------------------------------------------ configuration


def test_ignore_pattern_drops_a_difference(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    project = copy_project("newsbot", pytester.path)
    apply_defect("model_enum_labels_differ", project)
    set_key(project, 'ignore = ["type:article_status"]')
    result = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    result.assert_outcomes(passed=1)


AUDIT_MODEL = """

class AuditLog(Base):
    \"\"\"Kept by a trigger the application does not migrate.\"\"\"

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    note: Mapped[str | None] = mapped_column(index=True)
"""


def test_ignore_pattern_applies_to_alembic_autogenerate_too(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    """An ignored table is out of Alembic's comparison as well: its view shows no add_table
    (the enum drift makes the item fail, so that view is printed)."""
    project = copy_project("newsbot", pytester.path)
    apply_defect("model_enum_labels_differ", project)
    models = project / MODELS["newsbot"]
    models.write_text(models.read_text() + AUDIT_MODEL)
    # (the serial's sequence is not on the table for the catalog comparison: named apart)
    set_key(project, 'ignore = ["table:audit_*", "sequence:audit_*"]')
    result = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "the models differ from the schema the migrations build at head:",
            "  type public.article_status: labels *",
            "1 schema difference between migrations and models: 1 changed",
            "alembic autogenerate sees no difference",
        ]
    )
    result.stdout.no_fnmatch_line("*audit_log*")
    result.stdout.no_fnmatch_line("*Traceback*")


def test_alembic_view_leaves_out_what_ignore_patterns_name(schemaguard_database: Database) -> None:
    """Tables (on either side), columns and indexes, matched as the catalog comparison names
    them; a table pattern covers what is on the table."""
    with schemaguard_database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE public.audit_old (id integer PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE public.notes (id integer PRIMARY KEY)")
    metadata = MetaData()
    Table(
        "notes",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("legacy_id", Integer),
        Column("body", Text, index=True),
    )
    Table("audit_log", metadata, Column("id", Integer, primary_key=True), Column("at", Text))
    url = schemaguard_database.url

    def view(*patterns: str) -> list[str]:
        return sorted(alembic_view(url, metadata, ignore=parity_ignore_rules(patterns)))

    everything = view()
    assert everything == [
        "add_column public.notes.body",
        "add_column public.notes.legacy_id",
        "add_index ix_notes_body (on public.notes (body))",
        "add_table public.audit_log",
        "remove_table public.audit_old",
    ]
    assert view("table:audit_*") == everything[:3]
    assert view("column:*.legacy_id", "index:public.notes.ix_notes_*") == [
        "add_column public.notes.body",
        "add_table public.audit_log",
        "remove_table public.audit_old",
    ]
    assert view("table:public.notes", "table:audit_*") == []


def test_metadata_that_does_not_import_fails_with_one_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    project = copy_project("newsbot", pytester.path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'metadata = "newsbot.db.models:Base.metadata"',
            'metadata = "newsbot.db.modles:Base.metadata"',
        )
    )
    result = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*MetadataError: [[]tool.schemaguard] metadata in pyproject.toml = "
            "'newsbot.db.modles:Base.metadata': importing newsbot.db.modles failed: "
            "ModuleNotFoundError: No module named 'newsbot.db.modles'"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_metadata_that_is_not_a_metadata_says_so(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    project = copy_project("newsbot", pytester.path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'metadata = "newsbot.db.models:Base.metadata"', 'metadata = "newsbot.db.models:Base"'
        )
    )
    result = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*'newsbot.db.models:Base' is the class Base, not a sqlalchemy "
            "MetaData; did you mean newsbot.db.models:Base.metadata?"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_overridden_metadata_fixture_is_used(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    """Without the metadata key, a schemaguard_metadata fixture in conftest.py enables the check
    and supplies the models (here: the models with a planted drift)."""
    project = copy_project("newsbot", pytester.path)
    apply_defect("model_check_differs", project)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('metadata = "newsbot.db.models:Base.metadata"\n', "")
    )
    (project / "conftest.py").write_text(
        "import pytest\n\n\n"
        "@pytest.fixture(scope='session')\n"
        "def schemaguard_metadata():\n"
        "    from newsbot.db.models import Base\n\n"
        "    return Base.metadata\n"
    )
    result = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*orm_parity: the models (the schemaguard_metadata fixture) against the migrations*",
            # the metadata the fixture hands over is the original: its places are read then
            "  constraint public.dlq.ck_dlq_attempts_non_negative: *attempts >= 0* → "
            "*attempts > 0*) (model DeadLetter.__table_args__, src/newsbot/db/models.py:77)",
        ]
    )


def test_no_metadata_no_item(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    project = copy_project("newsbot", pytester.path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('metadata = "newsbot.db.models:Base.metadata"\n', "")
    )
    result = run_checks(
        pytester, monkeypatch, project, schemaguard_postgres, "--collect-only", "-q"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["alembic.ini::history"])
    result.stdout.no_fnmatch_line("*orm_parity*")


def test_chosen_index_name_that_differs_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    """Two chosen names for the same index are a difference (a later migration dropping it by
    name would break); the summary says it is a name-only difference."""
    project = copy_project("newsbot", pytester.path)
    models = project / "src/newsbot/db/models.py"
    text = models.read_text()
    old = "    published_at: Mapped[datetime | None] = mapped_column(index=True)\n"
    assert text.count(old) == 1
    models.write_text(
        text.replace(old, "    published_at: Mapped[datetime | None]\n").replace(
            "class Article(Base):\n",
            "class Article(Base):\n"
            "    __table_args__ = (Index('ix_articles_published', 'published_at'),)\n",
        )
    )
    models.write_text(
        models.read_text().replace("\nimport ", "\nfrom sqlalchemy import Index\nimport ", 1)
    )
    result = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  index public.articles.ix_articles_published*: name ix_articles_published_at → "
            "ix_articles_published (same definition) "
            "(model Article.__table_args__, src/newsbot/db/models.py:54)",
            "1 schema difference between migrations and models: 1 name only",
        ]
    )


# ------------------------------------------------------------------------------ pure layer


def _name_difference(kind: str, table: str, before: str, after: str) -> Difference:
    return Difference(
        kind=kind,
        name=f"{table}.{before}",
        attribute="name",
        before=before,
        after=after,
        category="name",
        message=f"{kind} {table}.{before}: name {before} → {after} (same definition)",
        parent=table,
        parent_kind="table",
    )


def test_server_invented_names() -> None:
    assert is_server_name("tasks_pkey", "public.tasks")
    assert is_server_name("tasks_owner_id_fkey", "public.tasks")
    assert is_server_name("time_entries_owner_id_idx1", "public.time_entries")
    assert is_server_name("dlq_attempts_check", "public.dlq")
    assert not is_server_name("ck_dlq_attempts_non_negative", "public.dlq")
    assert not is_server_name("ix_articles_published_at", "public.articles")
    assert not is_server_name("projects_pkey", "public.tasks")


def test_name_only_differences_are_dropped_only_for_server_names() -> None:
    invented = _name_difference("constraint", "public.tasks", "tasks_owner_id_fkey", "fk_owner")
    chosen = _name_difference("index", "public.tasks", "ix_tasks_owner", "ix_owner")
    failures, warnings = split_differences([invented, chosen])
    assert failures == [chosen]
    assert warnings == []


PROBE_MODELS = """\
    from __future__ import annotations

    import enum

    from sqlalchemy import Column, Enum, ForeignKey, Index, Integer, MetaData, String, Table
    from sqlalchemy import CheckConstraint
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


    class Base(DeclarativeBase):
        metadata = MetaData(
            naming_convention={
                "ix": "ix_%(column_0_label)s",
                "ck": "ck_%(table_name)s_%(constraint_name)s",
            }
        )


    class Stamped:
        created_by: Mapped[str] = mapped_column(String(40))


    class Colour(enum.Enum):
        RED = "red"


    class Order(Stamped, Base):
        __tablename__ = "orders"
        __table_args__ = (
            CheckConstraint("qty > 0", name="positive"),
            Index("ix_orders_colour", "colour"),
        )

        id: Mapped[int] = mapped_column(primary_key=True)
        qty_: Mapped[int] = mapped_column("qty")
        colour: Mapped[Colour] = mapped_column(Enum(Colour, name="colour"))
        owner: Mapped[str] = mapped_column(String(40), index=True)


    notes = Table(
        "notes",
        Base.metadata,
        Column("id", Integer, primary_key=True),
        Column("order_id", ForeignKey("orders.id"), index=True),
    )

    Hidden = type(
        "Hidden", (Base,), {"__tablename__": "hidden", "id": Column(Integer, primary_key=True)}
    )
"""


def test_locate_models_reads_classes_mixins_table_args_and_plain_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attributes (renamed columns, mixins), __table_args__ entries under a naming convention,
    index=True, enums and plain Table(...) columns; a class made by type() at run time has no
    class body to read and is simply not named."""
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "sg_probe_models.py").write_text(textwrap.dedent(PROBE_MODELS))
    monkeypatch.setattr(sys, "path", [str(root), *sys.path])
    monkeypatch.delitem(sys.modules, "app", raising=False)
    module = importlib.import_module("app.sg_probe_models")
    try:
        places = locate_models(module.Base.metadata, root).places
    finally:
        sys.modules.pop("app.sg_probe_models", None)
    shown = {f"{kind}:{name}": str(source) for (kind, name), source in places.items()}
    file = "app/sg_probe_models.py"
    assert shown == {
        "table:public.orders": f"model Order, {file}:27",
        "column:public.orders.id": f"model Order.id, {file}:34",
        "column:public.orders.qty": f"model Order.qty_, {file}:35",
        "column:public.orders.colour": f"model Order.colour, {file}:36",
        "column:public.orders.owner": f"model Order.owner, {file}:37",
        "column:public.orders.created_by": f"model Order.created_by, {file}:20",
        "constraint:public.orders.ck_orders_positive": f"model Order.__table_args__, {file}:30",
        "index:public.orders.ix_orders_colour": f"model Order.__table_args__, {file}:31",
        "index:public.orders.ix_orders_owner": f"model Order.owner, {file}:37",
        "enum:public.colour": f"model Order.colour, {file}:36",
        "table:public.notes": f"Table notes, {file}:40",
        "column:public.notes.id": f"Table notes.c.id, {file}:43",
        "column:public.notes.order_id": f"Table notes.c.order_id, {file}:44",
        "index:public.notes.ix_notes_order_id": f"Table notes.c.order_id, {file}:44",
    }


def _difference(kind: str, name: str, category: str, after: object = None) -> Difference:
    return Difference(
        kind=kind,
        name=name,
        attribute=None,
        before=None,
        after=after,
        category=category,  # type: ignore[arg-type]
        message=f"{kind} {name}: ...",
        parent=name.rpartition(".")[0] if kind != "table" else None,
        parent_kind="table" if kind != "table" else None,
    )


def test_model_sources_name_only_what_the_models_hold() -> None:
    """Nothing for an object only in the migrations; the models' name for a name-only
    difference; an unnamed constraint falls back to its column, then to its table."""
    order = Source("model Order", "app/models.py", 10)
    owner = Source("model Order.owner", "app/models.py", 14)
    sources = ModelSources(
        {
            ("table", "public.orders"): order,
            ("column", "public.orders.owner"): owner,
            ("index", "public.orders.ix_owner"): owner,
        }
    )
    assert sources.suffix(_difference("column", "public.orders.owner", "changed")) == (
        " (model Order.owner, app/models.py:14)"
    )
    assert sources.suffix(_difference("column", "public.orders.owner", "only_left")) == ""
    renamed = _name_difference("index", "public.orders", "orders_owner_idx", "ix_owner")
    assert sources.locate(renamed) is owner

    class Unique:
        columns = ("owner",)

    unique = _difference("constraint", "public.orders.orders_owner_key", "only_right", Unique())
    assert sources.locate(unique) is owner
    check = _difference("constraint", "public.orders.orders_check", "changed")
    assert sources.locate(check) is order
    assert ModelSources().suffix(check) == ""


# ------------------------------------------------------------------------------ failed migrations


def test_failed_upgrade_skips_parity_when_its_upgrade_item_runs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    """A revision that fails to upgrade is reported once, by its upgrade item: orm_parity is
    skipped with the reason; selected alone, orm_parity fails with the step's error."""
    defect = DEFECTS["upgrade_fails_midway"]
    project = copy_project(defect.project, pytester.path)
    apply_defect("upgrade_fails_midway", project)

    alone = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    alone.assert_outcomes(failed=1)
    alone.stdout.fnmatch_lines(
        [
            f"migrating to head failed: upgrade of {defect.revision}* failed",
            "file: *",
            "*ix_pending_publications_channel*",
        ]
    )
    alone.stdout.no_fnmatch_line("*Traceback*")

    everything = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-rfs", "-v")
    everything.stdout.fnmatch_lines(["alembic.ini::orm_parity SKIPPED*"])
    everything.stdout.fnmatch_lines([f"SKIPPED * needs {defect.revision}*, whose upgrade failed"])
    everything.stdout.re_match_lines([r"FAILED alembic\.ini::upgrade\[c47d19e2f035.*"])
    everything.stdout.no_fnmatch_line("FAILED alembic.ini::orm_parity*")


def test_failure_output_is_plain_unless_colour_is_asked_for(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, schemaguard_postgres: PostgresServer
) -> None:
    project = copy_project("newsbot", pytester.path)
    apply_defect("model_enum_labels_differ", project)
    title = (
        "orm_parity: the models (newsbot.db.models:Base.metadata) against the migrations at head"
    )
    plain = run_checks(pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity")
    plain.assert_outcomes(failed=1)
    assert "\x1b[" not in plain.stdout.str()
    plain.stdout.fnmatch_lines([title, "FAILED alembic.ini::orm_parity - orm_parity: the models*"])

    coloured = run_checks(
        pytester, monkeypatch, project, schemaguard_postgres, "-k", "orm_parity", "--color=yes"
    )
    coloured.assert_outcomes(failed=1)
    assert f"\x1b[1m{title}\x1b[0m" in coloured.stdout.str()
