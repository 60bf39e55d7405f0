"""The reports of a pytest run: ``--schemaguard-report`` (JSON), ``--schemaguard-summary``
(Markdown) and, when ``GITHUB_ACTIONS=true``, workflow annotations for the failures.

Registered by :mod:`pytest_schemaguard.plugin` only when one of them is asked for.  It
listens to the test reports of the check items (each carries its structured data in the
attribute :data:`~pytest_schemaguard.framework.REPORT_ATTRIBUTE`); under xdist the workers'
reports arrive on the controller, which alone writes the files and prints the annotations.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_schemaguard.errors import SchemaguardError
from pytest_schemaguard.framework import REPORT_ATTRIBUTE, is_xdist_worker
from pytest_schemaguard.report.document import (
    build_document,
    markdown_summary,
    workflow_annotations,
)
from pytest_schemaguard.stash import SETTINGS_KEY

if TYPE_CHECKING:
    from pytest_schemaguard.session import ServerManager

__all__ = ["ReportCollector", "install"]

PLUGIN_NAME = "schemaguard-report"


def install(config: pytest.Config, manager: ServerManager | None = None) -> None:
    """Register the collector (on the controller or a serial run; workers only send);
    ``manager`` is the run's server manager (for the PostgreSQL version)."""
    if is_xdist_worker(config) or config.pluginmanager.has_plugin(PLUGIN_NAME):
        return
    config.pluginmanager.register(ReportCollector(config, manager), PLUGIN_NAME)


class ReportCollector:
    """Gathers one record per check item from its test reports, and writes the outputs."""

    def __init__(self, config: pytest.Config, manager: ServerManager | None = None) -> None:
        self.config = config
        self.manager = manager
        self.settings = config.stash[SETTINGS_KEY]
        self.records: dict[str, dict[str, Any]] = {}
        self.order: dict[str, int] = {}
        """The items' collection order (the report lists them so, also under xdist, where
        they finish in another order)."""
        self.version: str | None = None
        self.written: list[str] = []
        self.errors: list[str] = []

    # ------------------------------------------------------------------ collecting
    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._remember_order(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._remember_order(ids)

    def _remember_order(self, ids: Iterable[str]) -> None:
        if not self.order:
            self.order = {nodeid: i for i, nodeid in enumerate(ids)}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTRIBUTE, None)
        if not isinstance(data, dict):
            return  # not a check item
        if self.version is None:
            # while the server is known (a serial run closes it before the session finishes)
            self.version = self._server_version()
        record = self.records.get(report.nodeid)
        if record is None:
            path, lineno, _ = report.location
            record = {
                "nodeid": report.nodeid,
                "check": data.get("check"),
                "revision": data.get("revision"),
                "file": self._relative(path),
                "line": lineno + 1 if lineno is not None else None,
                "outcome": "passed",
                "duration": 0.0,
                "message": None,
                "lines": [],
                "findings": [],
            }
            self.records[report.nodeid] = record
        record["duration"] = round(record["duration"] + (report.duration or 0.0), 6)
        if data.get("revision"):
            record["revision"] = data["revision"]
        if report.when == "call" or report.failed or report.skipped:
            # where the failure points (a downgrade() to fix) is known once it happened
            path, lineno, _ = report.location
            record["file"] = self._relative(path)
            record["line"] = lineno + 1 if lineno is not None else None
        if report.failed:
            first = record["outcome"] not in ("failed", "error")
            record["outcome"] = "failed" if report.when == "call" else "error"
            if first:
                record["message"], record["lines"] = _failure_text(report, data)
                # a finding's own file (a model's) is named like the item's: from the rootdir
                record["findings"] = [
                    {**f, "file": self._relative(f.get("file"))} for f in data.get("findings") or []
                ]
        elif report.skipped and record["outcome"] == "passed":
            record["outcome"] = "skipped"
            record["message"] = _skip_reason(report)

    def _relative(self, path: str | None) -> str | None:
        if not path:
            return None
        p = Path(path)
        if p.is_absolute():
            try:
                return p.relative_to(self.config.rootpath).as_posix()
            except ValueError:
                return p.as_posix()
        return p.as_posix()

    def _in_workspace(self, file: str | None) -> str | None:
        """``file`` (relative to the rootdir) relative to ``GITHUB_WORKSPACE``, the checkout
        GitHub resolves annotation paths against (a project in a subdirectory of the
        repository is annotated at ``backend/versions/...``)."""
        workspace = os.environ.get("GITHUB_WORKSPACE")
        if not file or not workspace or Path(file).is_absolute():
            return file
        try:
            base = self.config.rootpath.resolve().relative_to(Path(workspace).resolve())
        except ValueError:
            return file
        return (base / file).as_posix()

    # ------------------------------------------------------------------ writing
    def _secrets(self) -> list[str]:
        from sqlalchemy.engine import make_url

        out = []
        for dsn in (self.settings.dsn, self.settings.live_dsn):
            if dsn:
                try:
                    password = make_url(dsn).password
                except Exception:
                    continue
                if isinstance(password, str) and password:
                    out.append(password)
        return out

    def _output_path(self, key: str, value: str) -> Path:
        if self.settings.sources.get(key, "").startswith("--"):
            return self.config.invocation_params.dir / value
        return self.settings.path(value)

    def _server_version(self) -> str | None:
        manager = self.manager
        if manager is None:
            return None
        server = manager.running
        if server is not None:
            return str(server.version_text)
        if self.settings.dsn is not None:
            return None
        try:
            return manager.binaries().version
        except SchemaguardError:
            return None

    def _items(self) -> list[dict[str, Any]]:
        last = len(self.order)
        return sorted(self.records.values(), key=lambda r: self.order.get(r["nodeid"], last))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from pytest_schemaguard import __version__ as tool_version

        settings = self.settings
        items = self._items()
        secrets = self._secrets()
        version = self.version or self._server_version()
        if settings.report:
            import json

            document = build_document(
                items,
                tool_version=tool_version,
                postgresql_version=version,
                exit_status=int(exitstatus),
                secrets=secrets,
            )
            self._write("report", settings.report, json.dumps(document, indent=2) + "\n")
        if settings.summary:
            text = markdown_summary(
                items, tool_version=tool_version, postgresql_version=version, secrets=secrets
            )
            self._write("summary", settings.summary, text, append=_is_step_summary(settings))

    def _write(self, key: str, value: str, text: str, *, append: bool = False) -> None:
        path = self._output_path(key, value)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a" if append else "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            self.errors.append(f"cannot write {key} {value}: {exc.strerror or exc}")
            return
        self.written.append(f"schemaguard: wrote {key} {value}")

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if os.environ.get("GITHUB_ACTIONS") == "true":
            lines = workflow_annotations(
                self._items(), secrets=self._secrets(), place=self._in_workspace
            )
            if lines:
                # GitHub reads workflow commands from the job's output, one per line
                terminalreporter.ensure_newline()
                for line in lines:
                    terminalreporter.write_line(line)
        for line in self.written:
            terminalreporter.write_line(line)
        for error in self.errors:
            terminalreporter.write_line(f"ERROR: schemaguard: {error}", red=True, bold=True)


def _is_step_summary(settings: Any) -> bool:
    """The summary file is GitHub's job summary: append to it (other steps write there too)."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    summary = settings.summary
    if not step_summary or not summary:
        return False
    return Path(summary).resolve() == Path(step_summary).resolve()


def _failure_text(report: pytest.TestReport, data: dict[str, Any]) -> tuple[str, list[str]]:
    """A failure's title and lines: those of the check when it reported them, else the
    exception's one-line message (and the text pytest printed)."""
    if data.get("title"):
        return str(data["title"]), [str(line) for line in data.get("lines", [])]
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    text = report.longreprtext.strip()
    if not message:
        lines = text.splitlines()
        message = lines[0] if lines else report.outcome
    return str(message).splitlines()[0], []


def _skip_reason(report: pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return None
