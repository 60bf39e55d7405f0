"""The bodies of the application-test fixtures (registered, thin, in
:mod:`pytest_schemaguard.plugin`; this module is imported only when one is used)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_schemaguard.databases.source import locate
from pytest_schemaguard.databases.templates import AppTemplates
from pytest_schemaguard.errors import SchemaguardError, ServerError
from pytest_schemaguard.stash import APP_TEMPLATES_KEY, MANAGER_KEY, SETTINGS_KEY

if TYPE_CHECKING:
    from pytest_schemaguard.databases.migrations import ProjectMigrations
    from pytest_schemaguard.databases.migrator import Migrator
    from pytest_schemaguard.server import Database


def _fail(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


def _app(request: pytest.FixtureRequest) -> AppTemplates:
    """The session's templates, made once. Before the local server starts, the cached
    cluster holding the template at head is made ready for it to start from."""
    config = request.config
    app: AppTemplates | None = config.stash.get(APP_TEMPLATES_KEY, None)
    if app is not None:
        return app
    settings = config.stash[SETTINGS_KEY]
    manager = config.stash[MANAGER_KEY]
    source = locate(settings)
    requests = [request]

    def migrations() -> ProjectMigrations:
        # Alembic, SQLAlchemy and the revisions: only when a template must be built
        from pytest_schemaguard.databases.migrations import ProjectMigrations
        from pytest_schemaguard.framework import project_anchor

        anchor = project_anchor(config, settings)
        if anchor.project is None or anchor.history is None:
            raise SchemaguardError(anchor.load_error or "the migrations could not be read")
        make_config: Callable[[str], Any] = anchor.project.make_config
        # the project's own override, as the migration checks use it
        with contextlib.suppress(pytest.FixtureLookupError):
            make_config = requests[-1].getfixturevalue("schemaguard_alembic_config")
        return ProjectMigrations(anchor.project, anchor.history, settings, make_config)

    app = AppTemplates(settings, source, migrations)
    app.requests = requests
    if settings.dsn is None and not manager.started:
        try:
            binaries = manager.binaries()
        except ServerError:
            binaries = None  # schemaguard_postgres reports it, as for every fixture
        if binaries is not None:
            try:
                manager.cluster = app.prepare_cluster(binaries)
            except SchemaguardError as exc:
                # the tests at head fail with it; the migrator and other revisions still work
                app.head_error = exc
    config.stash[APP_TEMPLATES_KEY] = app
    return app


def before_server_start(request: pytest.FixtureRequest) -> None:
    """Called by ``schemaguard_postgres`` before it starts the local server in a session
    whose tests use the application databases: whichever fixture or check starts the server
    first, it starts from the cached cluster that holds the template at head."""
    # a project without migrations or metadata: the tests that need them say so
    with contextlib.suppress(SchemaguardError):
        _app(request)


def templates(request: pytest.FixtureRequest) -> Iterator[AppTemplates]:
    config = request.config
    try:
        app = _app(request)
    except SchemaguardError as exc:
        failure = f"schemaguard: {exc}"
        _fail(failure)
    app.requests.append(request)
    app.server = request.getfixturevalue("schemaguard_postgres")
    try:
        yield app
    finally:
        workeroutput = getattr(config, "workeroutput", None)
        if workeroutput is not None and app.status is not None:  # the controller's summary
            workeroutput["schemaguard_app_template"] = app.status.line(app.source)
        app.close()


def _head(app: AppTemplates, test: str) -> str:
    """The template at head; when it cannot be built, the first test that asks fails with
    the whole error and the others with one line naming that test."""
    __tracebackhide__ = True
    try:
        return app.head()
    except SchemaguardError as exc:
        failure = _once(app, test, str(exc), "schemaguard", "schemaguard: no database at head")
    _fail(failure)  # outside the except block: no chained traceback


def _once(app: AppTemplates, test: str, error: str, whole: str, short: str) -> str:
    """``<whole>: <error>`` at the first test ``error`` fails; at the others, one line that
    names that test: ``<short>: <the error in one line> (see the error of <that test>)``."""
    first = app.errors_shown.setdefault(error, test)
    if first == test:
        return f"{whole}: {error}"
    return f"{short}: {_one_line(error)} (see the error of {first})"


def _one_line(error: str) -> str:
    """The error of a failed migration in one line: the first after its ``error:`` line."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    if "error:" in lines and lines.index("error:") + 1 < len(lines):
        return lines[lines.index("error:") + 1]
    return lines[0] if lines else "the template could not be built"


def migrated_database(app: AppTemplates, test: str) -> Iterator[Database]:
    name = _head(app, test)
    db = app.clone(name)
    try:
        yield db
    finally:
        app.release(name, db)


def database_at(app: AppTemplates, test: str) -> Iterator[Callable[[str], Database]]:
    made: list[tuple[str | None, Database]] = []

    def at(revision: str) -> Database:
        __tracebackhide__ = True
        failure = None
        try:
            template, _ = app.template_at(revision)
        except SchemaguardError as exc:
            asked = f"schemaguard_database_at({revision!r})"
            failure = _once(app, test, str(exc), asked, asked)
        if failure is not None:
            _fail(failure)
        db = app.clone(template)
        made.append((template, db))
        return db

    try:
        yield at
    finally:
        for template, db in made:
            app.release(template, db)


def migrator(app: AppTemplates) -> Iterator[Migrator]:
    from pytest_schemaguard.databases.migrator import Migrator

    failure = None
    try:
        template, applied = app.template_at("base")
        migrations = app.migrations
    except SchemaguardError as exc:
        failure = f"schemaguard_migrator: {exc}"
    if failure is not None:
        _fail(failure)
    db = app.clone(template)
    m = Migrator(migrations, db, applied)
    try:
        yield m
    finally:
        m.close()
        app.release(template, db)
