"""The catalogue of planted defects: small, named changes to a copy of a clean fixture project.

Each defect is a mutator that edits files of a project copy in place (replacing text that must
be found, adding a revision file, changing a configuration key), plus what must report it: the
check, the revision (short id) or ``None`` for checks that look at one schema as a whole, and
the object the report must name. ``fixtures/README.md`` documents the same table.

Usage::

    project = copy_project("newsbot", tmp_path)
    defect = apply_defect("downgrade_keeps_index", project)
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"

CHECKS = frozenset(
    {"history", "upgrade", "roundtrip", "cycle", "orm_parity", "baseline", "legacy_ddl", "fk_types"}
)

# Where each project keeps its revisions and models, relative to the project directory.
VERSIONS = {
    "newsbot": "migrations/versions",
    "timetracker": "alembic/versions",
    "seo_pipeline": "migrations/versions",
}
MODELS = {
    "newsbot": "src/newsbot/db/models.py",
    "timetracker": "timetracker/models.py",
    "seo_pipeline": "seo_pipeline/db/models.py",
}


class DefectError(Exception):
    """A defect could not be applied: the project is not the expected one or has changed."""


@dataclass(frozen=True)
class Defect:
    name: str
    project: str
    check: str
    revision: str | None
    object: str
    """The object the report must name, as ``<kind> <qualified name>``."""
    description: str
    mentions: tuple[str, ...]
    """Plain strings the check's report must contain (identifiers, not formatting)."""
    mutate: Callable[[Path], None] = field(repr=False, compare=False)


def copy_project(name: str, dest: Path) -> Path:
    """Copy the clean fixture project ``name``; return the copy's directory.

    When ``dest`` exists the copy goes to ``dest / name``, otherwise to ``dest`` itself.
    """
    source = FIXTURES_DIR / name
    if not (source / "pyproject.toml").is_file():
        raise DefectError(f"no fixture project {name!r} in {FIXTURES_DIR}")
    target = dest / name if dest.exists() else dest
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def apply_defect(name: str, project_dir: Path) -> Defect:
    """Plant the defect ``name`` in ``project_dir``, a copy of its clean project."""
    try:
        defect = DEFECTS[name]
    except KeyError:
        raise DefectError(f"unknown defect {name!r}; known: {', '.join(sorted(DEFECTS))}") from None
    pyproject = project_dir / "pyproject.toml"
    if not pyproject.is_file():
        raise DefectError(f"{project_dir} has no pyproject.toml")
    project_name = tomllib.loads(pyproject.read_text())["project"]["name"]
    if project_name.replace("-", "_") != defect.project:
        raise DefectError(f"defect {name!r} applies to {defect.project!r}, not to {project_name!r}")
    defect.mutate(project_dir)
    return defect


# --- mutator building blocks -------------------------------------------------------------


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    found = text.count(old)
    if found != 1:
        raise DefectError(f"expected {old!r} exactly once in {path}, found it {found} times")
    path.write_text(text.replace(old, new))


def _revision_file(project_dir: Path, project: str, revision: str) -> Path:
    matches = sorted((project_dir / VERSIONS[project]).glob(f"{revision}_*.py"))
    if len(matches) != 1:
        raise DefectError(f"expected one file for revision {revision} in {project_dir}")
    return matches[0]


def _add_file(path: Path, text: str) -> None:
    if path.exists():
        raise DefectError(f"{path} already exists")
    path.write_text(text)


def in_revision(project: str, revision: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(project_dir: Path) -> None:
        _replace(_revision_file(project_dir, project, revision), old, new)

    return mutate


def in_file(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(project_dir: Path) -> None:
        _replace(project_dir / relative, old, new)

    return mutate


def in_models(project: str, old: str, new: str) -> Callable[[Path], None]:
    return in_file(MODELS[project], old, new)


def all_of(*mutators: Callable[[Path], None]) -> Callable[[Path], None]:
    def mutate(project_dir: Path) -> None:
        for mutator in mutators:
            mutator(project_dir)

    return mutate


def new_revision(project: str, filename: str, text: str) -> Callable[[Path], None]:
    def mutate(project_dir: Path) -> None:
        _add_file(project_dir / VERSIONS[project] / filename, text)

    return mutate


def set_schemaguard_key(key: str, old_value: str, new_value: str) -> Callable[[Path], None]:
    return in_file("pyproject.toml", f"\n{key} = {old_value}\n", f"\n{key} = {new_value}\n")


# --- the projects' revisions ---------------------------------------------------------------

NB_CREATE = "5b0c1e7a9d21"  # create articles and dlq
NB_STATUS = "8e3f2a4c6b90"  # add article status
NB_DIGESTS = "c47d19e2f035"  # create digests and pending publications
NB_SUMMARY = "2f9a6b8d1c44"  # optional summary, index published_at
NB_BACKOFF = "e61b7c3a0f58"  # dlq retry backoff
TT_BASELINE = "0c9d4e21ab37"  # legacy baseline
TT_DIAGNOSTICS = "7a51c3f09e62"  # formalise diagnostics objects
TT_SEARCH = "b3e8f6d21c90"  # tasks full text search
SEO_EMBEDDINGS = "f27a4d9c8e15"  # serp results, pages, embeddings, headings

SIBLING_REVISION = '''"""add article language

Revision ID: 9d0e4b7f2a16
Revises: 2f9a6b8d1c44
Create Date: 2024-06-18 09:41:12.220871

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "9d0e4b7f2a16"
down_revision: Union[str, Sequence[str], None] = "2f9a6b8d1c44"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("articles", sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column("articles", "language")
'''

_DEFECTS: list[Defect] = [
    # --- history -----------------------------------------------------------------------------
    Defect(
        name="downgrade_only_pass",
        project="newsbot",
        check="roundtrip",
        revision=NB_BACKOFF,
        object=f"revision {NB_BACKOFF}",
        description="the downgrade of 'dlq retry backoff' is only `pass`",
        mentions=(NB_BACKOFF,),
        mutate=in_revision(
            "newsbot",
            NB_BACKOFF,
            '''    """Downgrade schema."""
    op.execute("DROP FUNCTION dlq_backoff(integer)")
    op.drop_constraint(op.f("ck_dlq_attempts_non_negative"), "dlq", type_="check")
    op.drop_column("dlq", "next_retry_at")
    op.alter_column("dlq", "attempts", existing_type=sa.Integer(), server_default=None)
''',
            '''    """Downgrade schema."""
    pass
''',
        ),
    ),
    Defect(
        name="revision_import_error",
        project="newsbot",
        check="history",
        revision=NB_SUMMARY,
        object=(
            f"revision file migrations/versions/{NB_SUMMARY}_optional_summary_index_published_at.py"
        ),
        description=(
            "the revision file imports a name the application no longer has "
            "(ImportError when the script directory is loaded)"
        ),
        mentions=(f"{NB_SUMMARY}_optional_summary_index_published_at.py", "SUMMARY_MAX_LENGTH"),
        mutate=in_revision(
            "newsbot",
            NB_SUMMARY,
            "from alembic import op\n",
            "from alembic import op\nfrom newsbot.db.models import SUMMARY_MAX_LENGTH\n",
        ),
    ),
    Defect(
        name="two_heads",
        project="newsbot",
        check="history",
        revision=None,
        object=f"heads 9d0e4b7f2a16, {NB_BACKOFF}",
        description=(
            f"a new revision 9d0e4b7f2a16 also revises {NB_SUMMARY}, next to {NB_BACKOFF}: "
            "two heads where one is configured"
        ),
        mentions=(NB_BACKOFF, "9d0e4b7f2a16"),
        mutate=new_revision("newsbot", "9d0e4b7f2a16_add_article_language.py", SIBLING_REVISION),
    ),
    Defect(
        name="broken_down_revision",
        project="newsbot",
        check="history",
        revision=NB_BACKOFF,
        object=f"revision {NB_BACKOFF}",
        description=(
            f"the down_revision of {NB_BACKOFF} names 2f9a6b8d1c45 (a typo of {NB_SUMMARY}), "
            "which does not exist"
        ),
        mentions=("2f9a6b8d1c45",),
        mutate=in_revision(
            "newsbot",
            NB_BACKOFF,
            f'down_revision: Union[str, Sequence[str], None] = "{NB_SUMMARY}"',
            'down_revision: Union[str, Sequence[str], None] = "2f9a6b8d1c45"',
        ),
    ),
    # --- upgrade -----------------------------------------------------------------------------
    Defect(
        name="upgrade_fails_midway",
        project="newsbot",
        check="upgrade",
        revision=NB_DIGESTS,
        object=(
            "statement CREATE INDEX ix_pending_publications_channel"
            " ON pending_publications (chanel)"
        ),
        description=(
            "after creating its tables, the revision runs CREATE INDEX on a misspelt column "
            "(chanel): PostgreSQL fails part-way through the chain; later revisions cannot run"
        ),
        mentions=("ix_pending_publications_channel", "chanel"),
        mutate=in_revision(
            "newsbot",
            NB_DIGESTS,
            '    op.create_index(\n        op.f("ix_pending_publications_article_id"),',
            '    op.execute(\n        "CREATE INDEX ix_pending_publications_channel"\n'
            '        " ON pending_publications (chanel)"\n    )\n'
            '    op.create_index(\n        op.f("ix_pending_publications_article_id"),',
        ),
    ),
    # --- roundtrip ---------------------------------------------------------------------------
    Defect(
        name="downgrade_keeps_enum",
        project="timetracker",
        check="roundtrip",
        revision=TT_DIAGNOSTICS,
        object="type public.diagnostic_status",
        description=(
            "the downgrade drops diagnostic_results but not the enum type its status column "
            "created; upgrading again fails because the type exists"
        ),
        mentions=("diagnostic_status",),
        mutate=in_revision(
            "timetracker",
            TT_DIAGNOSTICS,
            '    sa.Enum(name="diagnostic_status").drop(op.get_bind())\n',
            "",
        ),
    ),
    Defect(
        name="downgrade_keeps_enum_checkfirst",
        project="newsbot",
        check="roundtrip",
        revision=NB_STATUS,
        object="type public.article_status",
        description=(
            "the downgrade drops articles.status but not the enum type; the upgrade creates "
            "the type with checkfirst=True, so upgrading again succeeds and hides the leftover"
        ),
        mentions=("article_status",),
        mutate=in_revision(
            "newsbot",
            NB_STATUS,
            "    article_status.drop(op.get_bind(), checkfirst=True)\n",
            "",
        ),
    ),
    Defect(
        name="downgrade_keeps_index",
        project="newsbot",
        check="roundtrip",
        revision=NB_SUMMARY,
        object="index public.articles.ix_articles_published_at",
        description="the downgrade forgets to drop the index the upgrade created",
        mentions=("ix_articles_published_at",),
        mutate=in_revision(
            "newsbot",
            NB_SUMMARY,
            '    op.drop_index(op.f("ix_articles_published_at"), table_name="articles")\n',
            "",
        ),
    ),
    Defect(
        name="downgrade_keeps_nullable",
        project="newsbot",
        check="roundtrip",
        revision=NB_SUMMARY,
        object="column public.articles.summary",
        description="the upgrade drops NOT NULL from articles.summary; the downgrade does not "
        "restore it",
        mentions=("articles", "summary"),
        mutate=in_revision(
            "newsbot",
            NB_SUMMARY,
            '    op.alter_column("articles", "summary", existing_type=sa.Text(), nullable=False)\n',
            "",
        ),
    ),
    Defect(
        name="downgrade_keeps_server_default",
        project="newsbot",
        check="roundtrip",
        revision=NB_BACKOFF,
        object="column public.dlq.attempts",
        description="the upgrade gives dlq.attempts a server default of 0; the downgrade "
        "does not remove it",
        mentions=("dlq", "attempts"),
        mutate=in_revision(
            "newsbot",
            NB_BACKOFF,
            '    op.alter_column("dlq", "attempts", existing_type=sa.Integer(), '
            "server_default=None)\n",
            "",
        ),
    ),
    Defect(
        name="downgrade_keeps_check",
        project="newsbot",
        check="roundtrip",
        revision=NB_BACKOFF,
        object="constraint public.dlq.ck_dlq_attempts_non_negative",
        description="the downgrade forgets to drop the CHECK constraint the upgrade added",
        mentions=("ck_dlq_attempts_non_negative",),
        mutate=in_revision(
            "newsbot",
            NB_BACKOFF,
            '    op.drop_constraint(op.f("ck_dlq_attempts_non_negative"), "dlq", type_="check")\n',
            "",
        ),
    ),
    Defect(
        name="downgrade_keeps_sequence",
        project="newsbot",
        check="roundtrip",
        revision=NB_DIGESTS,
        object="sequence public.digest_issue_seq",
        description="the downgrade drops digests but not the standalone sequence its issue_no "
        "default draws from",
        mentions=("digest_issue_seq",),
        mutate=in_revision(
            "newsbot",
            NB_DIGESTS,
            '    op.execute(sa.schema.DropSequence(sa.Sequence("digest_issue_seq")))\n',
            "",
        ),
    ),
    Defect(
        name="downgrade_keeps_trigger",
        project="timetracker",
        check="roundtrip",
        revision=TT_SEARCH,
        object="trigger public.tasks.trg_tasks_search_vector",
        description="the downgrade drops the search column and index but not the trigger "
        "(it calls the built-in tsvector_update_trigger, so nothing else depends on it)",
        mentions=("trg_tasks_search_vector",),
        mutate=in_revision(
            "timetracker",
            TT_SEARCH,
            '    op.execute("DROP TRIGGER trg_tasks_search_vector ON tasks")\n',
            "",
        ),
    ),
    Defect(
        name="downgrade_keeps_function",
        project="newsbot",
        check="roundtrip",
        revision=NB_BACKOFF,
        object="function public.dlq_backoff(attempts integer)",
        description="the downgrade forgets to drop the SQL function the upgrade created",
        mentions=("dlq_backoff",),
        mutate=in_revision(
            "newsbot",
            NB_BACKOFF,
            '    op.execute("DROP FUNCTION dlq_backoff(integer)")\n',
            "",
        ),
    ),
    # --- orm_parity ----------------------------------------------------------------------------
    Defect(
        name="model_uuid_where_integer",
        project="timetracker",
        check="orm_parity",
        revision=None,
        object="column public.time_entries.id",
        description="the model declares time_entries.id as a UUID with gen_random_uuid() (the "
        "redesign) while the migrations build INTEGER (serial)",
        mentions=("time_entries", "id"),
        mutate=all_of(
            in_models("timetracker", "import enum\n", "import enum\nimport uuid\n"),
            in_models(
                "timetracker",
                '    __tablename__ = "time_entries"\n\n'
                "    id: Mapped[int] = mapped_column(primary_key=True)\n",
                '    __tablename__ = "time_entries"\n\n'
                "    id: Mapped[uuid.UUID] = mapped_column(\n"
                "        primary_key=True, server_default=func.gen_random_uuid()\n"
                "    )\n",
            ),
        ),
    ),
    Defect(
        name="model_integer_where_uuid",
        project="newsbot",
        check="orm_parity",
        revision=None,
        object="column public.dlq.id",
        description="the model declares dlq.id as an INTEGER key while the migrations build "
        "UUID DEFAULT gen_random_uuid()",
        mentions=("dlq", "id"),
        mutate=in_models(
            "newsbot",
            "    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, "
            "server_default=func.gen_random_uuid())\n",
            "    id: Mapped[int] = mapped_column(primary_key=True)\n",
        ),
    ),
    Defect(
        name="model_missing_index",
        project="newsbot",
        check="orm_parity",
        revision=None,
        object="index public.articles.ix_articles_published_at",
        description="the model of articles.published_at has no index; the migrations create "
        "ix_articles_published_at",
        mentions=("ix_articles_published_at",),
        mutate=in_models(
            "newsbot",
            "    published_at: Mapped[datetime | None] = mapped_column(index=True)\n",
            "    published_at: Mapped[datetime | None]\n",
        ),
    ),
    Defect(
        name="model_enum_labels_differ",
        project="newsbot",
        check="orm_parity",
        revision=None,
        object="type public.article_status",
        description="the model's ArticleStatus has 'duplicate' where the migration's enum has "
        "'skipped'",
        mentions=("article_status", "skipped", "duplicate"),
        mutate=in_models("newsbot", '    SKIPPED = "skipped"\n', '    DUPLICATE = "duplicate"\n'),
    ),
    Defect(
        name="model_check_differs",
        project="newsbot",
        check="orm_parity",
        revision=None,
        object="constraint public.dlq.ck_dlq_attempts_non_negative",
        description="the model's CHECK is attempts > 0, the migration's attempts >= 0",
        mentions=("ck_dlq_attempts_non_negative",),
        mutate=in_models(
            "newsbot",
            'CheckConstraint("attempts >= 0", name="attempts_non_negative")',
            'CheckConstraint("attempts > 0", name="attempts_non_negative")',
        ),
    ),
    Defect(
        name="model_partial_index_differs",
        project="timetracker",
        check="orm_parity",
        revision=None,
        object="index public.time_entries.ux_time_entries_owner_active",
        description="the model's active-timer index has the predicate "
        "end_time IS NULL AND task_id IS NOT NULL; the migrations' is end_time IS NULL",
        mentions=("ux_time_entries_owner_active",),
        mutate=in_models(
            "timetracker",
            'postgresql_where=text("end_time IS NULL"),',
            'postgresql_where=text("end_time IS NULL AND task_id IS NOT NULL"),',
        ),
    ),
    Defect(
        name="model_nullability_differs",
        project="newsbot",
        check="orm_parity",
        revision=None,
        object="column public.articles.summary",
        description="the model declares articles.summary NOT NULL; the migrations made it nullable",
        mentions=("articles", "summary"),
        mutate=in_models(
            "newsbot",
            "    summary: Mapped[str | None] = mapped_column(Text)\n",
            "    summary: Mapped[str] = mapped_column(Text)\n",
        ),
    ),
    Defect(
        name="model_server_default_differs",
        project="newsbot",
        check="orm_parity",
        revision=None,
        object="column public.dlq.attempts",
        description="the model's server default for dlq.attempts is 1, the migration's is 0",
        mentions=("dlq", "attempts"),
        mutate=in_models(
            "newsbot",
            '    attempts: Mapped[int] = mapped_column(server_default=text("0"))\n',
            '    attempts: Mapped[int] = mapped_column(server_default=text("1"))\n',
        ),
    ),
    # --- baseline ----------------------------------------------------------------------------
    Defect(
        name="baseline_missing_column",
        project="timetracker",
        check="baseline",
        revision=None,
        object="column public.users_web.diagnostics_available",
        description=f"the committed pg_dump lacks users_web.diagnostics_available, which "
        f"revision {TT_DIAGNOSTICS} adds (compared at head)",
        mentions=("users_web", "diagnostics_available"),
        mutate=in_file(
            "reports/schema_baseline_legacy.sql",
            "    diagnostics_active boolean DEFAULT false NOT NULL,\n"
            "    diagnostics_available smallint[] DEFAULT '{}'::smallint[] NOT NULL\n",
            "    diagnostics_active boolean DEFAULT false NOT NULL\n",
        ),
    ),
    Defect(
        name="baseline_column_type_differs",
        project="timetracker",
        check="baseline",
        revision=None,
        object="column public.diagnostic_results.retry_of_id",
        description="the committed pg_dump declares diagnostic_results.retry_of_id integer; the "
        "migrations build bigint (like the id it references)",
        mentions=("diagnostic_results", "retry_of_id", "integer", "bigint"),
        mutate=in_file(
            "reports/schema_baseline_legacy.sql",
            "    retry_of_id bigint,\n",
            "    retry_of_id integer,\n",
        ),
    ),
    Defect(
        name="baseline_extra_index",
        project="timetracker",
        check="baseline",
        revision=None,
        object="index public.ix_tasks_status",
        description="the committed pg_dump has an index ix_tasks_status on tasks (status) that no "
        "migration creates (added by hand in production)",
        mentions=("tasks", "ix_tasks_status"),
        mutate=in_file(
            "reports/schema_baseline_legacy.sql",
            "CREATE INDEX ix_tasks_project_id ON public.tasks USING btree (project_id);\n",
            "CREATE INDEX ix_tasks_project_id ON public.tasks USING btree (project_id);\n"
            "CREATE INDEX ix_tasks_status ON public.tasks USING btree (status);\n",
        ),
    ),
    # --- legacy_ddl ----------------------------------------------------------------------------
    Defect(
        name="legacy_incident_uuid_scripts",
        project="timetracker",
        check="legacy_ddl",
        revision=None,
        object="column public.time_entries.stopped_at",
        description="the configuration checks the UUID-design bootstrap and repair scripts "
        "(db/ddl, db/migrations): UUID keys and gen_random_uuid() defaults where the schema "
        "has INTEGER, stopped_at used as a column and in the active-timer index predicate, "
        "CREATE EXTENSION and DO blocks not analysed",
        mentions=("stopped_at", "time_entries", "uuid"),
        mutate=set_schemaguard_key(
            "legacy_ddl",
            '["reports/manual_db_patch.sql", "db/repair/*.sql"]',
            '["db/ddl/*.sql", "db/migrations/*.sql"]',
        ),
    ),
    Defect(
        name="legacy_uuid_key",
        project="timetracker",
        check="legacy_ddl",
        revision=None,
        object="column public.diagnostic_templates.id",
        description="the repair script creates diagnostic_templates with a UUID key "
        "(DEFAULT gen_random_uuid()) and a UUID template_id in diagnostic_results; the schema "
        "has INTEGER",
        mentions=("diagnostic_templates", "uuid"),
        mutate=all_of(
            in_file(
                "db/repair/030_diagnostics.sql",
                "    id          SERIAL PRIMARY KEY,\n    code ",
                "    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),\n    code ",
            ),
            in_file(
                "db/repair/030_diagnostics.sql",
                "    template_id INTEGER NOT NULL",
                "    template_id UUID NOT NULL",
            ),
        ),
    ),
    Defect(
        name="legacy_missing_column",
        project="timetracker",
        check="legacy_ddl",
        revision=None,
        object="column public.time_entries.stopped_at",
        description="the repair script's active-timer index is WHERE stopped_at IS NULL; the "
        "schema has end_time and no stopped_at",
        mentions=("stopped_at", "ux_time_entries_owner_active"),
        mutate=in_file(
            "db/repair/020_active_timer_index.sql",
            "    WHERE end_time IS NULL;\n",
            "    WHERE stopped_at IS NULL;\n",
        ),
    ),
    Defect(
        name="legacy_fk_integer_to_bigint",
        project="timetracker",
        check="legacy_ddl",
        revision=None,
        object="column public.diagnostic_results.retry_of_id",
        description="the repair script declares diagnostic_results.retry_of_id INTEGER "
        "REFERENCES diagnostic_results (id), a BIGSERIAL/BIGINT key",
        mentions=("retry_of_id",),
        mutate=in_file(
            "db/repair/030_diagnostics.sql",
            "    retry_of_id BIGINT REFERENCES diagnostic_results (id),\n",
            "    retry_of_id INTEGER REFERENCES diagnostic_results (id),\n",
        ),
    ),
    Defect(
        name="legacy_unparseable_statement",
        project="timetracker",
        check="legacy_ddl",
        revision=None,
        object="statement db/repair/020_active_timer_index.sql:13",
        description="the repair script has CLUSTER … USING …, valid PostgreSQL that sqlglot "
        "cannot parse, before its active-timer index, whose predicate uses stopped_at: a "
        "finding with its position, and the index after it still analysed (stopped_at missing)",
        mentions=("020_active_timer_index.sql", "13", "stopped_at"),
        mutate=all_of(
            in_file(
                "db/repair/020_active_timer_index.sql",
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_time_entries_owner_active\n",
                "CLUSTER time_entries USING ix_time_entries_owner_id_start_time;\n\n"
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_time_entries_owner_active\n",
            ),
            in_file(
                "db/repair/020_active_timer_index.sql",
                "    WHERE end_time IS NULL;\n",
                "    WHERE stopped_at IS NULL;\n",
            ),
        ),
    ),
    # --- fk_types ----------------------------------------------------------------------------
    Defect(
        name="fk_integer_to_bigint",
        project="newsbot",
        check="fk_types",
        revision=None,
        object="column public.pending_publications.article_id",
        description="articles.id is widened to BIGINT (migration and model) while "
        "pending_publications.article_id, which references it, stays INTEGER",
        mentions=("pending_publications", "article_id"),
        mutate=all_of(
            in_revision(
                "newsbot",
                NB_CREATE,
                '        "articles",\n        sa.Column("id", sa.Integer(), nullable=False),\n',
                '        "articles",\n        sa.Column("id", sa.BigInteger(), nullable=False),\n',
            ),
            in_models(
                "newsbot",
                "from sqlalchemy import (\n",
                "from sqlalchemy import (\n    BigInteger,\n    Integer,\n",
            ),
            # Spelled out: a bare ForeignKey would take the new BIGINT type from articles.id.
            in_models(
                "newsbot",
                "    article_id: Mapped[int] = mapped_column(\n"
                '        ForeignKey("articles.id", ondelete="CASCADE"), index=True\n',
                "    article_id: Mapped[int] = mapped_column(\n"
                '        Integer, ForeignKey("articles.id", ondelete="CASCADE"), index=True\n',
            ),
            in_models(
                "newsbot",
                '    __tablename__ = "articles"\n\n'
                "    id: Mapped[int] = mapped_column(primary_key=True)\n",
                '    __tablename__ = "articles"\n\n'
                "    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)\n",
            ),
        ),
    ),
    Defect(
        name="model_vector_dimensions_differ",
        project="seo_pipeline",
        check="orm_parity",
        revision=None,
        object="column public.embeddings.vector",
        description=f"the model's embeddings are vector(768); revision {SEO_EMBEDDINGS} built "
        "vector(1536)",
        mentions=("embeddings", "vector"),
        mutate=in_models(
            "seo_pipeline", "EMBEDDING_DIMENSIONS = 1536\n", "EMBEDDING_DIMENSIONS = 768\n"
        ),
    ),
]

DEFECTS: dict[str, Defect] = {defect.name: defect for defect in _DEFECTS}
assert len(DEFECTS) == len(_DEFECTS), "defect names must be unique"
assert all(defect.check in CHECKS for defect in _DEFECTS)
