"""The ``safety[<rev>]`` items: what each revision's upgrade was measured to do to the tables
that existed before it (see :mod:`pytest_schemaguard.safety.observe`).

:func:`install` (called from :mod:`pytest_schemaguard.plugin` at configure time) registers this
module as a plugin and adds :func:`safety_checks` as a provider of check items: one
``safety[<rev>]`` per revision with an ``upgrade`` item (after ``safety_since`` when it is set),
unless ``safety = "off"``.  The measuring is done during the migration runner's pass, by a
:class:`~pytest_schemaguard.safety.observe.SafetyObserver` registered on the runner when its
fixture is set up, for the revisions whose ``safety`` item is selected; a ``safety`` item asks
the runner for its revision's ``upgrade`` result (so the upgrade has run) and reports the
findings: warnings (``safety = "warn"``, the default) or a failure (``"fail"``).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_schemaguard import framework
from pytest_schemaguard.config import Settings
from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.migrations.history import History
from pytest_schemaguard.migrations.runner import CheckId, CheckResult, Layout, MigrationRunner
from pytest_schemaguard.report.findings import Finding as ReportFinding
from pytest_schemaguard.stash import SETTINGS_KEY

if TYPE_CHECKING:
    # the observer and its rules are imported when an item of theirs is selected
    from pytest_schemaguard.safety.observe import SafetyObserver
    from pytest_schemaguard.safety.rules import Finding

__all__ = ["SafetyWarning", "install", "safety_checks", "safety_revisions"]

PLUGIN_NAME = "schemaguard-safety"
OBSERVER_KEY: pytest.StashKey[SafetyObserver] = pytest.StashKey()


class SafetyWarning(framework.SchemaguardWarning):
    """A revision's upgrade was measured doing something risky to an existing table
    (``safety = "warn"``): a rewrite, a blocking lock, a validating scan, a drop..."""


def install(config: pytest.Config) -> None:
    """Register this module's hooks and the provider of the ``safety`` items."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(sys.modules[__name__], PLUGIN_NAME)
    framework.register_provider(safety_checks)


def safety_revisions(history: History, settings: Settings) -> list[str]:
    """The revisions with a ``safety`` item, in run order; a :class:`SchemaguardError` for a
    ``safety_since`` or ``safety_ignore`` revision the history does not have."""
    if settings.safety == "off" or not history.sound or not history.revisions:
        return []
    revisions = Layout.build(history, settings).revisions()
    for entry in settings.safety_ignore:
        ref = entry.rpartition(":")[0]
        if ref != "*" and history.resolve(ref) is None:
            raise SchemaguardError(
                f"{settings.describe('safety_ignore')}: {entry!r} names no revision of the "
                "history (or more than one); use a revision id or a unique prefix, or '*'"
            )
    if settings.safety_since:
        since = history.resolve(settings.safety_since)
        if since is None:
            raise SchemaguardError(
                f"{settings.describe('safety_since')} = {settings.safety_since!r} names no "
                "revision of the history (or more than one); use a revision id or a unique "
                "prefix"
            )
        after = history.descendants(since)
        revisions = [r for r in revisions if r in after]
    return revisions


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist: a ``safety_since``/``safety_ignore`` naming no revision is one ``ERROR:``
    line from the controller, as in a serial run."""
    config = session.config
    if framework.is_xdist_worker(config) or not config.pluginmanager.has_plugin("dsession"):
        return
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.enabled or settings.safety == "off":
        return
    try:
        anchor = framework.project_anchor(config, settings)
        if anchor.history is not None:
            safety_revisions(anchor.history, settings)
    except SchemaguardError as exc:
        raise pytest.UsageError(f"schemaguard: {exc}") from None


def safety_checks(
    session: pytest.Session, settings: Settings, anchor: framework.Anchor
) -> list[framework.CheckSpec]:
    """One ``safety[<rev>]`` spec per revision the migration checks upgrade."""
    history = anchor.history
    if history is None or anchor.project is None:
        return []
    specs = []
    for rev in safety_revisions(history, settings):
        path = history.info(rev).path
        specs.append(
            framework.CheckSpec(
                f"safety[{history.label(rev)}]",
                _check_function(rev, path),
                "safety",
                path,
                {"schemaguard_safety": rev, "schemaguard_revision": rev},
            )
        )
    return specs


def _selected(session: pytest.Session) -> list[str]:
    values = framework.item_order(session).values("schemaguard_safety")
    return [v for v in values if isinstance(v, str)]


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """When the migration runner is made: observe the upgrades of the revisions whose
    ``safety`` item is selected (before the first pass runs)."""
    value = yield
    if fixturedef.argname == "schemaguard_migrations" and isinstance(value, MigrationRunner):
        wanted = set(_selected(request.session))
        if wanted and OBSERVER_KEY not in request.config.stash:
            from pytest_schemaguard.safety.observe import SafetyObserver

            script = value.project.script
            paths = {}
            for rev in wanted:
                sc = script.get_revision(rev)
                if sc is not None and sc.path:
                    paths[rev] = str(sc.path)
            observer = SafetyObserver(paths, wanted=wanted.__contains__)
            value.observe(observer)
            request.config.stash[OBSERVER_KEY] = observer
    return value


def _next_uses_runner(request: pytest.FixtureRequest) -> bool:
    """Whether the next item asks the migration runner too (a suspended pass may wait)."""
    following = framework.item_order(request.session).following(request.node)
    if following is None:
        return False
    return hasattr(following, "schemaguard_safety") or isinstance(
        getattr(following, "schemaguard_check", None), CheckId
    )


def _check_function(rev: str, path: str) -> Callable[..., None]:
    def run_safety(schemaguard_migrations: MigrationRunner, request: pytest.FixtureRequest) -> None:
        runner = schemaguard_migrations
        if framework.is_xdist_worker(request.config):
            batch: list[CheckId] = []
        else:
            batch = [CheckId("upgrade", r) for r in _selected(request.session)]
        try:
            upgrade = runner.result(CheckId("upgrade", rev), batch)
        finally:
            if not _next_uses_runner(request):
                runner.settle()
        observer = request.config.stash.get(OBSERVER_KEY, None)
        result = _result(runner, observer, rev, upgrade, request.session)
        framework.report(result, path=path)

    return run_safety


def _result(
    runner: MigrationRunner,
    observer: SafetyObserver | None,
    rev: str,
    upgrade: CheckResult,
    session: pytest.Session,
) -> CheckResult:
    history = runner.history
    info = history.info(rev)
    title = f"safety of {history.describe(rev)} ({info.path})"
    if upgrade.outcome != "passed":
        return _blocked(runner, rev, upgrade, title, session)
    observation = observer.observations.get(rev) if observer is not None else None
    if observation is None:  # pragma: no cover - every selected revision is observed
        return CheckResult(
            "failed", title, [f"the upgrade of {history.describe(rev)} was not observed"]
        )
    settings = runner.settings
    findings = [f for f in observation.findings if not _ignored(f, history, settings)]
    if not findings:
        return CheckResult("passed", title)
    described = history.describe(rev)
    lines = [f.render(described, info.path) for f in findings]
    if settings.safety == "fail":
        first = next((f.line for f in findings if f.line is not None), None)
        return CheckResult(
            "failed",
            title,
            lines,
            location=(info.path, first) if first else None,
            findings=[
                _report_finding(f, line, described, info.path)
                for f, line in zip(findings, lines, strict=True)
            ],
        )
    for finding, line in zip(findings, lines, strict=True):
        warnings.warn_explicit(
            SafetyWarning(line),
            SafetyWarning,
            filename=info.path,
            lineno=finding.line or 1,
        )
    return CheckResult("passed", title)


def _report_finding(finding: Finding, message: str, described: str, path: str) -> ReportFinding:
    """The finding in the JSON report: what the statement did to the table (the measured fact,
    its rule, lock and rewrite), at the line of the revision file that sent it."""
    return ReportFinding(
        kind="table",
        object=finding.table or "",
        attribute=None,
        category="measured",
        left_label="at the parent",
        left=None,
        right_label=f"upgrade of {described}",
        right=finding.fact,
        message=message,
        file=path,
        line=finding.line,
        rule=finding.rule,
        revision=finding.revision,
        statement=finding.statement,
        table=finding.table,
        lock=finding.lock,
        rewrite=finding.rewrite,
    )


def _ignored(finding: Finding, history: History, settings: Settings) -> bool:
    for entry in settings.safety_ignore:
        ref, _, rule = entry.rpartition(":")
        if rule == finding.rule and (ref == "*" or history.resolve(ref) == finding.revision):
            return True
    return False


def _blocked(
    runner: MigrationRunner,
    rev: str,
    upgrade: CheckResult,
    title: str,
    session: pytest.Session,
) -> CheckResult:
    """The result of a ``safety`` item whose revision's upgrade did not pass: skipped as
    blocked when the failing ``upgrade`` item is in the run, else failed with its error (once:
    the framework skips the next items failing with the same cause)."""
    history = runner.history
    if upgrade.cause is not None:
        return CheckResult("failed", title, list(upgrade.lines), cause=upgrade.cause)
    failing = rev
    if rev not in runner.failed_upgrades and rev not in runner.alone_errors:
        failing = next(iter(history.ancestors_among(rev, runner.failed_upgrades)), rev)
    selected = {
        getattr(item, "schemaguard_check", None)
        for item in session.items
        if isinstance(getattr(item, "schemaguard_check", None), CheckId)
    }
    if CheckId("upgrade", failing) in selected:
        return CheckResult("skipped", title, [f"blocked: upgrade[{history.label(failing)}] failed"])
    error = runner.alone_errors.get(failing) or runner.failed_upgrades.get(failing)
    if error is None:
        return CheckResult("skipped", title, [upgrade.reason or "the upgrade did not run"])
    return CheckResult(
        "failed",
        title,
        [f"upgrade of {history.describe(failing)} failed", *error.render()],
        cause=error.cause(),
    )
